// The reference's pruning run replayed through the command line, written the way its scripts spell the
// flags: the trajectory golden (GOLDEN-README §6) — both cases — from `hcore prune --trace`, each optimizer
// step's log α and λ within 2e-5, gradient norm and every micro-batch's KL within 1e-5 relative. Also the
// reference flags hcore refuses, and a periodic evaluation in the trace and the stored history.
import Foundation
import TestSupport
import XCTest

final class PruneReplayCLITests: XCTestCase {
    let golden = repo + "/Tests/Fixtures/golden/"
    let model = repo + "/Tests/Fixtures/models/minilm-nli"

    /// The golden's 96 pairs as JSONL, in its batch order.
    func pairsFile(_ dir: String) throws -> String {
        let j =
            try JSONSerialization.jsonObject(
                with: Data(contentsOf: URL(fileURLWithPath: golden + "minilm-nli_outputs.json"))) as! [String: Any]
        let lines = try (j["examples"] as! [[String: Any]]).map { ex in
            String(
                decoding: try JSONSerialization.data(withJSONObject: [
                    "text": ex["text"]!, "text_pair": ex["text_pair"]!,
                ]), as: UTF8.self)
        }
        let path = dir + "/pairs.jsonl"
        try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func replay(_ name: String) throws {
        let dir = NSTemporaryDirectory() + "hcore-replay-\(name)-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let doc =
            try JSONSerialization.jsonObject(
                with: Data(contentsOf: URL(fileURLWithPath: golden + "minilm-nli_prune_trajectory.json")))
            as! [String: Any]
        let spec = (doc["cases"] as! [[String: Any]]).first { $0["name"] as? String == name }!
        let trajectory = golden + "minilm-nli_prune_trajectory.safetensors"
        let r = try hcore([
            "prune", "--initialize_from", model, "--train", try pairsFile(dir), "--avg_activation_path",
            golden + "minilm-nli_pruning.safetensors",
            "--store", dir + "/s.hcs", "--per_device_train_batch_size", "16", "--gradient_accumulation_steps",
            "\(spec["accum"]!)",
            "--learning_rate", "\(spec["lr"]!)", "--reg_learning_rate", "\(spec["reg_lr"]!)", "--warmup_steps",
            "\(spec["warmup_steps"]!)",
            "--max_steps", "\(spec["total_steps"]!)", "--start_sparsity", "\(spec["start_sparsity"]!)",
            "--target_sparsity", "\(spec["target_sparsity"]!)",
            "--num_sparsity_warmup_steps", "\(spec["num_sparsity_warmup_steps"]!)", "--max_grad_norm",
            "\(spec["max_grad_norm"]!)",
            "--dataloader_num_workers", "32", "--do_train", "--dropout", "0", "--no-shuffle",
            "--initial-log-alpha", trajectory + ":\(name).initial_log_alpha", "--noise", trajectory + ":\(name).u",
            "--trace", dir + "/trace.jsonl",
        ])
        XCTAssertEqual(r.code, 0, r.err)
        XCTAssertTrue(r.err.contains("--dataloader_num_workers is the reference's PyTorch machinery"), r.err)
        let trace = try String(contentsOfFile: dir + "/trace.jsonl", encoding: .utf8).split(separator: "\n").map {
            try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any]
        }
        let steps = spec["steps"] as! [[String: Any]]
        XCTAssertEqual(trace.count, steps.count)
        for (k, (got, want)) in zip(trace, steps).enumerated() {
            XCTAssertEqual(got["step"] as? Int, k)
            let worst = zip(got["log_alpha"] as! [Double], want["log_alpha"] as! [Double]).map { abs($0 - $1) }.max()!
            XCTAssertLessThan(worst, 2e-5, "\(name) step \(k): log α")
            for key in ["lambda1", "lambda2"] {
                XCTAssertEqual(got[key] as! Double, want[key] as! Double, accuracy: 2e-5, "\(name) step \(k): \(key)")
            }
            for key in ["target_sparsity", "lr", "reg_lr"] {
                XCTAssertEqual(got[key] as! Double, want[key] as! Double, accuracy: 1e-12, "\(name) step \(k): \(key)")
            }
            let norm = want["grad_norm_before_clip"] as! Double
            XCTAssertEqual(
                got["grad_norm_before_clip"] as! Double, norm, accuracy: 1e-5 * norm, "\(name) step \(k): gradient norm"
            )
            for (g, w) in zip(got["micro_batches"] as! [[String: Any]], want["micro_batches"] as! [[String: Any]]) {
                let kl = w["kl"] as! Double
                XCTAssertEqual(g["kl"] as! Double, kl, accuracy: 1e-5 * kl + 1e-9, "\(name) step \(k): micro-batch KL")
            }
        }
    }

    func testClippedCaseThroughTheCLI() throws { try replay("clip") }
    func testUnclippedCaseThroughTheCLI() throws { try replay("noclip") }

    /// The reference's flags that hcore replaces stop at once with the flag to use; a noise file of the wrong
    /// shape is refused before any step runs.
    func testReferenceFlagsWithoutTwinAndBadReplayInputs() throws {
        for (flag, hint) in [
            ("--output_dir", "--store"), ("--glue_path", "--train"), ("--task_name", "--train"),
            ("--do_eval", "--eval-data"),
        ] {
            let r = try hcore(["prune", flag, "x", "--model", model])
            XCTAssertEqual(r.code, 2, r.err)
            XCTAssertTrue(r.err.contains(hint) && r.err.split(separator: "\n").count == 1, "\(flag): \(r.err)")
        }
        let dir = NSTemporaryDirectory() + "hcore-replay-bad-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let trajectory = golden + "minilm-nli_prune_trajectory.safetensors"
        let common = [
            "prune", "--model", model, "--train", try pairsFile(dir), "--activations",
            golden + "minilm-nli_pruning.safetensors",
            "--store", dir + "/s.hcs", "--max-steps", "6", "--gradient-accumulation-steps", "4",
        ]
        let short = try hcore(common + ["--noise", trajectory + ":noclip.u"])  // 6 rows; 24 micro-batches needed
        XCTAssertEqual(short.code, 3, short.err)
        XCTAssertTrue(short.err.contains("[24, 78]"), short.err)
        let unnamed = try hcore(common + ["--noise", trajectory])
        XCTAssertEqual(unnamed.code, 3, unnamed.err)
        XCTAssertTrue(unnamed.err.contains(":NAME"), unnamed.err)
        XCTAssertFalse(
            FileManager.default.fileExists(atPath: dir + "/s.hcs"), "nothing is written before the inputs are checked")
    }

    /// --eval-data with --eval-steps: the deterministic masks are evaluated every N steps and after the last
    /// (KL to the full model, accuracy on labelled data), in the trace and in the stored history.
    func testPeriodicEvaluation() throws {
        let dir = NSTemporaryDirectory() + "hcore-prune-eval-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let tiny = model
        // a model with an entailment label, for HANS accuracy
        let hans = repo + "/data/hans/heuristics_train_set.txt.zst"
        XCTAssertEqual(
            try hcore([
                "activations", "--model", tiny, "--data", hans, "--max-examples", "64", "--out",
                dir + "/acts.safetensors",
            ]).code, 0)
        let r = try hcore([
            "prune", "--model", tiny, "--train", hans, "--max-train-samples", "64", "--activations",
            dir + "/acts.safetensors",
            "--store", dir + "/s.hcs", "--max-steps", "5", "--num-sparsity-warmup-steps", "3", "--warmup-steps", "1",
            "--gradient-accumulation-steps", "1", "--per-device-train-batch-size", "8", "--initial-log-alpha", "2",
            "--eval-data", hans, "--max-eval-samples", "40", "--eval-steps", "2", "--trace", dir + "/t.jsonl",
            "--logging-steps", "1",
        ])
        XCTAssertEqual(r.code, 0, r.err)
        let trace = try String(contentsOfFile: dir + "/t.jsonl", encoding: .utf8).split(separator: "\n").map {
            try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any]
        }
        // after steps 2, 4 and the last
        XCTAssertEqual(trace.map { $0["eval"] != nil }, [false, true, false, true, true])
        for e in trace.compactMap({ $0["eval"] as? [String: Any] }) {
            let kl = e["kl"] as! Double
            let acc = e["accuracy"] as! Double
            XCTAssertTrue(kl >= 0 && kl.isFinite && (0...1).contains(acc), "\(e)")
        }
        XCTAssertEqual(r.err.components(separatedBy: "eval kl").count - 1, 3, r.err)
        let show = try hcore(["store", "show", dir + "/s.hcs", "prune-t0.5-seed42"])
        XCTAssertTrue(show.out.contains("eval_accuracy"), show.out)
        // The stored log α drives the reference eval's threshold sweep and unit forcing.
        let sweep = try hcore([
            "eval", "--model", tiny, "--store", dir + "/s.hcs", "--activations", dir + "/acts.safetensors", "--data",
            hans,
            "--max-examples", "40", "--step-size", "0.5", "--force-exclude", "a0.mlp",
        ])
        XCTAssertEqual(sweep.code, 0, sweep.err)
        let results =
            (try JSONSerialization.jsonObject(with: Data(sweep.out.utf8)) as! [String: Any])["results"]
            as! [[String: Any]]
        XCTAssertEqual(
            results.map { $0["subnetwork"] as! String }, ["prune-t0.5-seed42@t=0", "prune-t0.5-seed42@t=0.5"])
        XCTAssertEqual(results.map { $0["threshold"] as! Double }, [0, 0.5])
    }
}
