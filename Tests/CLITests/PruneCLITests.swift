// `hcore prune` on a cluster: --shard i/n takes every n-th seed into its own store file, a rerun skips the
import Foundation
import TestSupport
import XCTest

/// `hcore prune` on a cluster: --shard i/n takes every n-th seed into its own store file, a rerun skips the
/// seeds already stored, and `hcore store merge` combines the shards.
final class PruneCLITests: XCTestCase {
    func testShardsSkipAndMerge() throws {
        let dir = NSTemporaryDirectory() + "hcore-prune-cli-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let model = repo + "/Tests/Fixtures/models/tiny-bert"
        let train = repo + "/data/hans/heuristics_train_set.txt.zst"
        let a = try hcore([
            "activations", "--model", model, "--data", train, "--max-examples", "64", "--out",
            dir + "/acts.safetensors",
        ])
        XCTAssertEqual(a.code, 0, a.err)
        let common = [
            "prune", "--model", model, "--train", train, "--max-train-samples", "64", "--activations",
            dir + "/acts.safetensors",
            "--store", dir + "/subs.hcs", "--target-sparsity", "0.3", "--num-sparsity-warmup-steps", "4", "--max-steps",
            "6",
            "--warmup-steps", "1", "--gradient-accumulation-steps", "1", "--per-device-train-batch-size", "8",
            "--seeds", "1-5",
        ]
        for i in 1...2 {
            let r = try hcore(common + ["--shard", "\(i)/2"])
            XCTAssertEqual(r.code, 0, r.err)
        }
        let again = try hcore(common + ["--shard", "1/2"])
        XCTAssertEqual(again.code, 0, again.err)
        XCTAssertEqual(again.err.components(separatedBy: "skipped").count - 1, 3, again.err)  // seeds 1, 3, 5
        let m = try hcore([
            "store", "merge", dir + "/subs.hcs", dir + "/subs.hcs.shard-1-of-2", dir + "/subs.hcs.shard-2-of-2",
        ])
        XCTAssertEqual(m.code, 0, m.err)
        let ls = try hcore(["store", "ls", dir + "/subs.hcs", "--json"])
        for sd in 1...5 { XCTAssertTrue(ls.out.contains("seed\(sd)\""), "seed \(sd) missing: \(ls.out)") }
        let bad = try hcore(common + ["--target-sparsity", "1.0"])
        XCTAssertEqual(bad.code, 2)
    }
}
