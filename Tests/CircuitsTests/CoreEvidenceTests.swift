// The core with its evidence, on masks whose null distributions are known in closed form.
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

final class CoreEvidenceTests: XCTestCase {
    var settings: CoreSettings {
        var s = CoreSettings()
        (s.permutations, s.splits, s.seed) = (20_000, 2000, 3)
        return s
    }

    /// Two layers of 4 heads (+ MLPs), three subnetworks each keeping heads 0 and 1 of layer 0, none of layer
    /// 1, and the MLP of layer 0 only. Heads: under the null each mask keeps a uniformly random pair of layer
    /// 0's heads, so the head core is |A ∩ B ∩ C|: P(size ≥ 2) = P(A = B = C) = (1/6)² = 1/36, E = 4·(1/2)³ = 0.5.
    /// MLPs: each mask keeps one MLP of two at random: P(all three the same) = 1/4, E = 2·(1/2)³ = 0.25.
    func testNullsOfHeadsAndMLPsApartAgainstClosedForm() throws {
        let layout = StoreLayout(layers: 2, heads: 4)
        let subs = (0..<3).map {
            StoredSubnetwork(name: "s\($0)", mask: [1, 1, 0, 0, 0, 0, 0, 0, 1, 0], meta: .object([]))
        }
        let e = try heuristicCore(allOf: subs, layout: layout, settings: settings)
        XCTAssertEqual(e.report.core, [0, 1, 8])
        XCTAssertEqual(e.selection, "all 3 subnetworks given (no in-domain rule)")
        XCTAssertEqual(e.headNull.observed, 2)
        XCTAssertEqual(e.headNull.nullMean, 0.5, accuracy: 0.02)
        XCTAssertEqual(e.headNull.pValue, 1.0 / 36, accuracy: 0.004)
        XCTAssertEqual(e.mlpNull.observed, 1)
        XCTAssertEqual(e.mlpNull.nullMean, 0.25, accuracy: 0.02)
        XCTAssertEqual(e.mlpNull.pValue, 0.25, accuracy: 0.01)
        XCTAssertEqual(e.coreMLPs, [0])
        XCTAssertEqual(e.coreHeads.map { [$0.layer, $0.head] }, [[0, 0], [0, 1]])
        // Reproducible from its seed.
        XCTAssertEqual(
            try heuristicCore(allOf: subs, layout: layout, settings: settings).headNull.pValue, e.headNull.pValue)
    }

    /// Two masks of one layer's four heads, each keeping two: the halves are the two masks themselves. The
    /// observed Jaccard is |A ∩ B| / |A ∪ B|; under the null two random pairs of four overlap in 2, 1 or 0 heads
    /// with probabilities 1/6, 4/6, 1/6, so E[J] = 1/6 · 1 + 4/6 · 1/3 + 1/6 · 0 = 7/18.
    func testSplitHalfAgainstClosedForm() throws {
        let layout = StoreLayout(layers: 1, heads: 4)
        let subs = [
            StoredSubnetwork(name: "a", mask: [1, 1, 0, 0, 1], meta: .object([])),
            StoredSubnetwork(name: "b", mask: [1, 0, 1, 0, 1], meta: .object([])),
        ]
        let e = try heuristicCore(allOf: subs, layout: layout, settings: settings)
        XCTAssertEqual(e.splitHalf.jaccard, 1.0 / 3, accuracy: 1e-12)
        XCTAssertEqual(e.splitHalf.halfCoreSize, 2, accuracy: 1e-12)
        XCTAssertEqual(e.splitHalf.nullJaccard, 7.0 / 18, accuracy: 0.01)
    }

    /// The reference's rule: accuracy > full − margin, strictly, one-sided (better than the full model
    /// matches); fewer than the minimum: refused, naming how many matched.
    func testMatchingIsOneSidedAndStrict() throws {
        let layout = StoreLayout(layers: 1, heads: 4)
        let scores = [0.95, 0.89, 0.87, 0.8705, 0.80]
        let scored = scores.enumerated().map {
            ScoredSubnetwork(
                StoredSubnetwork(name: "s\($0.offset)", mask: [1, 0, 1, 0, 1], meta: .object([])), inDomain: $0.element)
        }
        let rule = try MatchRule(metric: "dev", full: 0.9)
        let e = try heuristicCore(scored, rule: rule, layout: layout, settings: settings)
        XCTAssertEqual(e.report.subnetworks, ["s0", "s1", "s3"])  // 0.87 = 0.9 − 0.03 is not above it
        XCTAssertEqual(e.excluded, ["s2", "s4"])
        XCTAssertTrue(e.selection.hasPrefix("3 of 5 subnetworks match"), e.selection)
        XCTAssertThrowsError(
            try heuristicCore(scored, rule: try MatchRule(metric: "dev", full: 0.9, minimumCount: 4), layout: layout)
        ) { XCTAssertTrue("\($0)".contains("leaves 3 of 5"), "\($0)") }
        XCTAssertThrowsError(try MatchRule(metric: "dev", full: .nan))
        XCTAssertThrowsError(try MatchRule(metric: "dev", full: 0.9, margin: -0.01))
        XCTAssertThrowsError(try scoredByMetadata(scored.map(\.subnetwork), metric: "eval/dev"))
    }

    func testDefaultMetrics() {
        func sub(_ keys: [String]) -> StoredSubnetwork {
            StoredSubnetwork(name: "s", mask: [1], meta: .object(keys.map { ($0, .float(0.5)) }))
        }
        let subs = [sub(["eval/dev", "eval/hans", "eval/hans/plotted", "eval/hans/non-entailment"])]
        XCTAssertEqual(defaultInDomainMetric(subs), "eval/dev")
        XCTAssertEqual(defaultOODMetric(subs), "eval/hans/plotted")
        let two = [sub(["eval/hans/plotted", "eval/hans-plotted/plotted"])]
        XCTAssertEqual(defaultOODMetric(two), "eval/hans-plotted/plotted")
    }
}
