// Path patching's identities on tiny-bert: patching nothing changes nothing, and with no head frozen the logits
// receiver is the senders' total effect.
import Checkpoint
import Eval
import Foundation
import Kernels
import Model
import Store
import TestSupport
import Tokenizer
import XCTest

@testable import Circuits

/// Path patching on tiny-bert (2 layers × 4 heads): patching nothing changes nothing; with no head frozen the
/// logits receiver is the senders' total effect, and the total effect is the masked forward with the senders
/// (heads and MLPs) mean-ablated; control sets come from outside the core.
final class PathPatchingTests: XCTestCase {
    func setup() throws -> (BertModel, [TokenBatch], MeanActivations) {
        let (model, enc, acts) = try tinyHANS(40)
        return (model, [TokenBatch(Array(enc[0..<24])), TokenBatch(Array(enc[24...]))], acts)
    }

    func testNothingIsZeroAndEverythingIsTheTotalEffect() throws {
        let (model, batches, acts) = try setup()
        let receivers = patchReceivers(senders: PatchSenders(heads: [(0, 1)]), layers: 2, heads: 4)
        XCTAssertEqual(receivers.count, 4 * 3 + 1)
        let none = try pathPatch(
            model: model, batches: batches, senders: PatchSenders(heads: []), receivers: receivers,
            corruption: .mean(acts), entailment: 0)
        for r in receivers.indices { XCTAssertLessThan(none.deltas[r].map(abs).max()!, 1e-5, "\(receivers[r])") }
        XCTAssertLessThan(none.total.map(abs).max()!, 1e-5)
        let senders = PatchSenders(heads: [(layer: 0, head: 1), (layer: 0, head: 3)], mlps: [0])
        var plain = PatchSettings()
        (plain.freeze, plain.frozenLayerNorm) = (false, false)
        let total = try pathPatch(
            model: model, batches: batches, senders: senders, receivers: [.logits], corruption: .mean(acts),
            entailment: 0, settings: plain)
        var masks = MaskValues.ones(layers: 2, heads: 4)
        masks.heads[0][1] = 0
        masks.heads[0][3] = 0
        masks.mlps[0] = 0
        var want: [Double] = []
        for b in batches {
            let clean = try model.forward(b)
            let ablated = try model.forward(b, soft: (masks, .mean(acts)))
            want += zip(
                entailmentLogOdds(ablated, classes: 2, entailment: 0),
                entailmentLogOdds(clean, classes: 2, entailment: 0)
            ).map { $0 - $1 }
        }
        XCTAssertGreaterThan(want.map(abs).max()!, 1e-3, "the senders must matter for the test to mean anything")
        for (g, w) in zip(total.deltas[0], want) { XCTAssertEqual(g, w, accuracy: 1e-5) }
        for (g, w) in zip(total.totalRecomputed, want) { XCTAssertEqual(g, w, accuracy: 1e-5) }
        // With the other heads frozen, layer-1 receivers see only what the senders write; their effects differ
        // from one another and are finite; the frozen-LayerNorm total differs from the recomputed one.
        let frozen = try pathPatch(
            model: model, batches: batches, senders: senders, receivers: receivers, corruption: .mean(acts),
            entailment: 0)
        XCTAssertTrue(frozen.deltas.allSatisfy { $0.allSatisfy(\.isFinite) })
        XCTAssertGreaterThan(Set(frozen.receivers.indices.map { (frozen.mean($0) * 1e6).rounded() }).count, 5)
        XCTAssertGreaterThan(zip(frozen.total, frozen.totalRecomputed).map { abs($0 - $1) }.max()!, 1e-5)
    }

    /// Controls replace each core head by a non-core head of its layer and each core MLP by a non-core MLP;
    /// with too few non-core MLPs they keep the MLPs and say so; seeded.
    func testControlSendersComeFromOutsideTheCore() {
        let core = PatchSenders(heads: [(0, 1), (0, 3), (2, 0)], mlps: [1])
        let (sets, rule) = controlSenders(core, core: core, layers: 3, heads: 4, count: 50, seed: 2)
        for s in sets {
            XCTAssertEqual(s.heads.filter { $0.layer == 0 }.count, 2)
            XCTAssertEqual(s.heads.filter { $0.layer == 2 }.count, 1)
            XCTAssertTrue(s.heads.allSatisfy { h in !core.heads.contains { $0 == h } })
            XCTAssertEqual(s.mlps.count, 1)
            XCTAssertNotEqual(s.mlps, [1])
        }
        XCTAssertEqual(Set(sets.flatMap { $0.heads.filter { $0.layer == 0 }.map(\.head) }), [0, 2])
        XCTAssertEqual(Set(sets.flatMap(\.mlps)), [0, 2])
        XCTAssertTrue(rule.contains("each sender MLP by a non-core MLP"), rule)
        XCTAssertEqual(
            sets.map(\.names),
            controlSenders(core, core: core, layers: 3, heads: 4, count: 50, seed: 2).sets.map(\.names))
        let allMLPs = PatchSenders(heads: [(0, 1)], mlps: [0, 1, 2])
        let kept = controlSenders(allMLPs, core: allMLPs, layers: 3, heads: 4, count: 5, seed: 1)
        XCTAssertTrue(kept.sets.allSatisfy { $0.mlps == [0, 1, 2] })
        XCTAssertTrue(kept.rule.contains("the controls test the heads alone"), kept.rule)
    }
}
