// `hcore circuits readers` (aliases patch, reads), `positions` and `attention --summary` end to end on
// minilm-nli: every later head's q, k and v and the logits as receivers, each with its p and q against the
// controls; senders that include an MLP; the corruptions; bad input refused with the documented codes.
import Foundation
import TestSupport
import XCTest

final class PatchCLITests: XCTestCase {
    let minilm = repo + "/Tests/Fixtures/models/minilm-nli"
    let acts = repo + "/Tests/Fixtures/golden/minilm-nli_pruning.safetensors"

    func testReadersJSON() throws {
        let r = try hcore([
            "circuits", "readers", "--model", minilm, "--per-subcase", "2", "--core", "0.1 0.5 a0.mlp",
            "--activations", acts, "--controls", "3", "--json",
        ])
        XCTAssertEqual(r.code, 0, r.err)
        XCTAssertTrue(r.err.contains("3 controls: fewer than the 20 a claim needs"), r.err)
        let doc = try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as! [String: Any]
        let receivers = doc["receivers"] as! [[String: Any]]
        XCTAssertEqual(receivers.count, 5 * 12 * 3 + 1)
        XCTAssertEqual(receivers.last?["receiver"] as? String, "logits")
        for x in receivers {
            for key in ["p", "q", "p_rank"] {
                XCTAssertTrue((x[key] as? Double).map { (0...1).contains($0) } ?? false, "\(key) \(x)")
            }
        }
        XCTAssertEqual(doc["senders"] as? [String], ["a0.h1", "a0.h5", "a0.mlp"])
        XCTAssertEqual(doc["layernorm"] as? String, "scales frozen at the clean run's")
        XCTAssertEqual((doc["groups"] as? [String: Int])?["all"], 8)
        XCTAssertEqual((doc["control_senders"] as? [[String]])?.count, 3)
        XCTAssertNotNil(doc["total_effect"] as? Double)
        let sample = doc["sample"] as? String ?? ""
        XCTAssertTrue(sample.contains("2 per subcase of ln_subject/object_swap"), sample)
    }

    func testReadersRefusals() throws {
        let bad = try hcore([
            "circuits", "patch", "--model", repo + "/Tests/Fixtures/models/tiny-bert", "--per-subcase", "1", "--core",
            "0.1", "--corrupt", "paired", "--controls", "2",
        ])
        XCTAssertEqual(bad.code, 4, bad.err)  // no entailment label
        XCTAssert(bad.err.contains("'entailment' label"), bad.err)
        let noActs = try hcore(["circuits", "readers", "--model", minilm, "--core", "0.1"])
        XCTAssertEqual(noActs.code, 2, noActs.err)
        XCTAssert(noActs.err.contains("--activations is needed"), noActs.err)
        let unknown = try hcore(["circuits", "reads", "--model", minilm, "--core", "0.1", "--corrupt", "zero"])
        XCTAssertEqual(unknown.code, 2, unknown.err)
        XCTAssert(unknown.err.contains("--corrupt takes mean, paired or overlap-removed, not 'zero'"), unknown.err)
        let one = try hcore(["circuits", "readers", "--model", minilm, "--core", "0.1", "--controls", "1"])
        XCTAssertEqual(one.code, 2, one.err)
        let inside = try hcore(["circuits", "readers", "--model", minilm, "--core", "0.1", "--inside"])
        XCTAssertEqual(inside.code, 2, inside.err)
        XCTAssert(inside.err.contains("--inside patches the matching subnetworks of --store"), inside.err)
    }

    /// The overlap-removing counterfactual with LayerNorms recomputed: the document says both.
    func testOverlapRemovedCorruption() throws {
        let r = try hcore([
            "circuits", "readers", "--model", minilm, "--per-subcase", "2", "--core", "0.1 0.5",
            "--corrupt", "overlap-removed", "--recompute-layernorm", "--controls", "2", "--json",
        ])
        XCTAssertEqual(r.code, 0, r.err)
        let doc = try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as! [String: Any]
        XCTAssertEqual(doc["layernorm"] as? String, "recomputed")
        let corruption = doc["corruption"] as? String ?? ""
        XCTAssert(corruption.hasPrefix("the same premise with a hypothesis of the same subcase"), corruption)
        let paired = (doc["groups"] as? [String: Int])?["all"] ?? 0
        XCTAssert(corruption.contains("\(paired) pairs, \(8 - paired) without one"), corruption)
        XCTAssertGreaterThan(paired, 4)
    }

    func testPositionsAndAttentionSummary() throws {
        let r = try hcore([
            "circuits", "positions", "--model", minilm, "--per-subcase", "2", "--core", "0.1 a1.mlp",
            "--activations", acts, "--json",
        ])
        XCTAssertEqual(r.code, 0, r.err)
        let doc = try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as! [String: Any]
        let units = doc["units"] as! [[String: Any]]
        XCTAssertEqual(units.map { $0["unit"] as? String }, ["a0.h1", "a1.mlp"])
        for u in units {
            XCTAssertEqual(Set((u["by_part"] as! [String: Any]).keys), ["[CLS]", "premise", "hypothesis", "[SEP]"])
            XCTAssertNotNil((u["direct_logit_attribution"] as? [String: Any])?["mean"] as? Double)
        }
        let s = try hcore(["circuits", "attention", "--model", minilm, "--summary", "--per-subcase", "2"])
        XCTAssertEqual(s.code, 0, s.err)
        let lines = s.out.split(separator: "\n")
        XCTAssertEqual(lines.count, 2 + 72)
        XCTAssertTrue(lines[1].hasPrefix("head      core  same word (uniform)"), String(lines[1]))
    }
}
