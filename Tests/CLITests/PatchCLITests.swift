// `hcore circuits patch` (alias `reads`) end to end on minilm-nli: every later head's q, k and v and the logits as
import Foundation
import TestSupport
import XCTest

/// `hcore circuits patch` (alias `reads`) end to end on minilm-nli: every later head's q, k and v and the logits as
/// receivers, grouped by the plotted HANS subcases present, each with a percentile among the controls.
final class PatchCLITests: XCTestCase {
    func testPatchJSON() throws {
        let r = try hcore([
            "circuits", "reads", "--model", repo + "/Tests/Fixtures/models/minilm-nli", "--data",
            repo + "/data/hans/heuristics_evaluation_set.txt.zst",
            "--max-examples", "8", "--core", "0.1 0.5", "--activations",
            repo + "/Tests/Fixtures/golden/minilm-nli_pruning.safetensors",
            "--controls", "1", "--json",
        ])
        XCTAssertEqual(r.code, 0, r.err)
        let doc = try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as! [String: Any]
        let receivers = doc["receivers"] as! [[String: Any]]
        XCTAssertEqual(receivers.count, 5 * 12 * 3 + 1)
        XCTAssertEqual(receivers.last?["receiver"] as? String, "logits")
        XCTAssertTrue(receivers.allSatisfy { ($0["percentile"] as? Double).map { (0...1).contains($0) } ?? false })
        XCTAssertEqual(doc["senders"] as? [String], ["a0.h1", "a0.h5"])
        let bad = try hcore([
            "circuits", "patch", "--model", repo + "/Tests/Fixtures/models/tiny-bert", "--data",
            repo + "/data/hans/heuristics_evaluation_set.txt.zst",
            "--max-examples", "4", "--core", "0.1", "--corrupt", "paired",
        ])
        XCTAssertEqual(bad.code, 4, bad.err)  // no entailment label
        XCTAssert(bad.err.contains("'entailment' label"), bad.err)
        let noActs = try hcore([
            "circuits", "patch", "--model", repo + "/Tests/Fixtures/models/minilm-nli", "--data",
            repo + "/data/hans/heuristics_evaluation_set.txt.zst", "--core", "0.1",
        ])
        XCTAssertEqual(noActs.code, 2, noActs.err)
        XCTAssert(noActs.err.contains("--activations is needed"), noActs.err)
        let unknown = try hcore([
            "circuits", "patch", "--model", repo + "/Tests/Fixtures/models/minilm-nli", "--data",
            repo + "/data/hans/heuristics_evaluation_set.txt.zst", "--core", "0.1", "--corrupt", "zero",
        ])
        XCTAssertEqual(unknown.code, 2, unknown.err)
        XCTAssert(unknown.err.contains("--corrupt takes mean or paired, not 'zero'"), unknown.err)
    }

    /// Paired corruption with frozen LayerNorm scales: the document says so, and counts the pairs that found a partner.
    func testPairedCorruptionWithFrozenLayerNorm() throws {
        let hans = repo + "/data/hans/heuristics_evaluation_set.txt.zst"
        let r = try hcore([
            "circuits", "patch", "--model", repo + "/Tests/Fixtures/models/minilm-nli", "--data", hans,
            "--max-examples", "8", "--core", "0.1 0.5",
            "--corrupt", "paired", "--corrupt-data", hans, "--freeze-layernorm", "--controls", "1", "--json",
        ])
        XCTAssertEqual(r.code, 0, r.err)
        let doc = try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as! [String: Any]
        XCTAssertEqual(doc["layernorm"] as? String, "scales frozen at the clean run's")
        let corruption = doc["corruption"] as? String ?? ""
        XCTAssert(corruption.hasPrefix("a paired input of the other label"), corruption)
        let paired = (doc["groups"] as? [String: Int])?["all"] ?? 0
        XCTAssert(corruption.contains("\(paired) pairs, \(8 - paired) without a partner"), corruption)
        XCTAssertGreaterThan(paired, 0)
    }
}
