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
/// logits receiver is the senders' total effect (the masked forward with the senders mean-ablated); a receiver
/// head given the clean input is unchanged.
final class PathPatchingTests: XCTestCase {
    func setup() throws -> (BertModel, [TokenBatch], MeanActivations) {
        let (model, enc, acts) = try tinyHANS(40)
        return (model, [TokenBatch(Array(enc[0..<24])), TokenBatch(Array(enc[24...]))], acts)
    }

    func testNothingIsZeroAndEverythingIsTheTotalEffect() throws {
        let (model, batches, acts) = try setup()
        let receivers = patchReceivers(senders: [(0, 1)], layers: 2, heads: 4)
        XCTAssertEqual(receivers.count, 4 * 3 + 1)
        let none = try pathPatch(
            model: model, batches: batches, senders: [], receivers: receivers, corruption: .mean(acts), entailment: 0)
        for r in receivers.indices { XCTAssertLessThan(none.deltas[r].map(abs).max()!, 1e-5, "\(receivers[r])") }
        let senders = [(layer: 0, head: 1), (layer: 0, head: 3)]
        let total = try pathPatch(
            model: model, batches: batches, senders: senders, receivers: [.logits], corruption: .mean(acts),
            entailment: 0, freeze: false)
        var masks = MaskValues.ones(layers: 2, heads: 4)
        masks.heads[0][1] = 0
        masks.heads[0][3] = 0
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
        // With the other heads frozen, layer-1 receivers see only what the senders write; their effects differ
        // from one another and are finite.
        let frozen = try pathPatch(
            model: model, batches: batches, senders: senders, receivers: receivers, corruption: .mean(acts),
            entailment: 0)
        XCTAssertTrue(frozen.deltas.allSatisfy { $0.allSatisfy(\.isFinite) })
        XCTAssertGreaterThan(Set(frozen.receivers.indices.map { (frozen.mean($0) * 1e6).rounded() }).count, 5)
        // Controls: as many heads per layer, seeded.
        let random = matchedRandomSenders(senders, heads: 4, count: 3, seed: 1)
        XCTAssertTrue(
            random.allSatisfy { $0.count == 2 && $0.allSatisfy { $0.layer == 0 } && Set($0.map(\.head)).count == 2 })
        XCTAssertEqual(
            random.map { $0.map(\.head) },
            matchedRandomSenders(senders, heads: 4, count: 3, seed: 1).map { $0.map(\.head) })
    }
}
