// The paper's grid end to end on a small model: fine-tune from scratch keeping two checkpoints, evaluate each
// (acc_over_ft), prune 2 checkpoints × 2 target sparsities × 1 seed as two concurrent Slurm-style shards writing
// into the per-checkpoint stores, and check that every cell landed once with its step, target and seed; a
// rerun skips every cell.
import Checkpoint
import Foundation
import TestSupport
import XCTest

final class GridCLITests: XCTestCase {
    func testFinetuneCheckpointsEvalAndPruneGrid() throws {
        let dir = NSTemporaryDirectory() + "hcore-grid-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // Both labels: the HANS training file is sorted by label, so its first and last rows.
        let rows = String(decoding: try readDataFile(repo + "/data/hans/heuristics_train_set.txt.zst"), as: UTF8.self)
            .split(separator: "\n").dropFirst().map { $0.split(separator: "\t", omittingEmptySubsequences: false) }
        let lines = try (rows.prefix(48) + rows.suffix(48)).map { r in
            String(
                decoding: try JSONSerialization.data(withJSONObject: [
                    "text": String(r[5]), "text_pair": String(r[6]), "label": String(r[0]),
                ]), as: UTF8.self)
        }
        let hans = dir + "/pairs.jsonl"
        try (lines.joined(separator: "\n") + "\n").write(toFile: hans, atomically: true, encoding: .utf8)
        let ft = try hcore([
            "finetune", "--config", "tiny", "--train", hans, "--max-train-samples", "96", "--out", dir + "/ft",
            "--per-device-train-batch-size", "16", "--max-steps", "4", "--save-steps", "2", "--learning-rate", "1e-3",
        ])
        XCTAssertEqual(ft.code, 0, ft.err)
        for step in [2, 4] {
            XCTAssertTrue(
                FileManager.default.fileExists(atPath: dir + "/ft/checkpoint-\(step)/model.safetensors"),
                "checkpoint-\(step)")
        }

        let ev = try hcore(["eval", "--checkpoints", dir + "/ft", "--data", hans, "--max-examples", "32"])
        XCTAssertEqual(ev.code, 0, ev.err)
        let results =
            (try JSONSerialization.jsonObject(with: Data(ev.out.utf8)) as! [String: Any])["results"] as! [[String: Any]]
        XCTAssertEqual(results.map { $0["step"] as? Int }, [2, 4])
        XCTAssertEqual(results.map { $0["subnetwork"] as! String }, ["checkpoint-2", "checkpoint-4"])

        // Unit ablation of a checkpoint: every unit once, a heatmap.
        let ab = try hcore([
            "circuits", "ablate", "--model", dir + "/ft/checkpoint-4", "--data", hans, "--max-examples", "16",
            "--zero-ablation", "--svg", dir + "/ablate.svg",
        ])
        XCTAssertEqual(ab.code, 0, ab.err)
        let units =
            (try JSONSerialization.jsonObject(with: Data(ab.out.utf8)) as! [String: Any])["units"] as! [[String: Any]]
        XCTAssertFalse(units.isEmpty)
        XCTAssertTrue(try String(contentsOfFile: dir + "/ablate.svg", encoding: .utf8).contains("<svg"))

        let grid = [
            "prune", "--checkpoints", dir + "/ft", "--grid-out", dir + "/grid", "--train", hans, "--max-train-samples",
            "32",
            "--activation-examples", "32", "--target_sparsities", "0.3,0.5", "--seed", "7", "--max-steps", "3",
            "--num-sparsity-warmup-steps", "2",
            "--warmup-steps", "1", "--gradient-accumulation-steps", "1", "--per-device-train-batch-size", "8",
            "--initial-log-alpha", "2",
        ]
        let shards = try runConcurrently([grid + ["--shard", "1/2"], grid + ["--shard", "2/2"]])
        for s in shards { XCTAssertEqual(s.code, 0, s.err) }
        for step in [2, 4] {
            let ls = try hcore(["store", "ls", dir + "/grid/checkpoint-\(step).hcs", "--json"])
            XCTAssertEqual(ls.code, 0, ls.err)
            let subs = try JSONSerialization.jsonObject(with: Data(ls.out.utf8)) as! [[String: Any]]
            let meta = subs.map { $0["meta"] as! [String: Any] }
            XCTAssertEqual(meta.compactMap { $0["step"] as? Int }, [step, step], ls.out)
            XCTAssertEqual(Set(meta.compactMap { $0["target_sparsity"] as? Double }), [0.3, 0.5], ls.out)
            XCTAssertEqual(meta.compactMap { $0["seed"] as? Int }, [7, 7], ls.out)
        }
        let again = try hcore(grid)
        XCTAssertEqual(again.code, 0, again.err)
        XCTAssertEqual(again.err.components(separatedBy: "skipped").count - 1, 4, again.err)
    }
}
