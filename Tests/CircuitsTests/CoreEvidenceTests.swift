// The core with its evidence, on masks whose null distribution is known in closed form.
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

/// The core with its evidence, on masks whose null distribution is known in closed form.
final class CoreEvidenceTests: XCTestCase {
    /// One layer of 4 heads (+ its MLP), three subnetworks each keeping heads 0 and 1 and the MLP. Under the
    /// null each mask keeps a uniformly random pair of heads (the MLP stratum has one unit: always kept), so the
    /// core is 1 + |A ∩ B ∩ C|: P(size ≥ 3) = P(A = B = C) = (1/6)² = 1/36, E[size] = 1 + 4·(1/2)³ = 1.5.
    func testPermutationNullAgainstClosedForm() throws {
        let layout = StoreLayout(layers: 1, heads: 4)
        let subs = (0..<3).map {
            StoredSubnetwork(name: "s\($0)", mask: [1, 1, 0, 0, 1], meta: .object([("eval/dev", .float(0.9))]))
        }
        let e = try heuristicCore(subs, layout: layout, rule: nil, permutations: 20_000, bootstraps: 200, seed: 3)
        XCTAssertEqual(e.report.core, [0, 1, 4])
        XCTAssertEqual(e.null.observed, 3)
        XCTAssertEqual(e.null.nullMean, 1.5, accuracy: 0.02)
        XCTAssertEqual(e.null.pValue, 1.0 / 36, accuracy: 0.004)
        XCTAssertEqual(e.stability, [1, 1, 0, 0, 1])  // every resample keeps the same masks
        // Reproducible from its seed.
        XCTAssertEqual(
            try heuristicCore(subs, layout: layout, rule: nil, permutations: 500, seed: 9).null.pValue,
            try heuristicCore(subs, layout: layout, rule: nil, permutations: 500, seed: 9).null.pValue)
    }

    /// Matching by the stored in-domain metric within the margin of the reference; too few: refused.
    func testMatchingRuleAndMinimumCount() throws {
        let layout = StoreLayout(layers: 1, heads: 4)
        let scores = [0.90, 0.89, 0.80, 0.885]
        let subs = scores.enumerated().map {
            StoredSubnetwork(
                name: "s\($0.offset)", mask: [1, 0, 1, 0, 1],
                meta: .object([("eval/dev", .float($0.element)), ("eval/hans", .float(0.5))]))
        }
        XCTAssertEqual(defaultInDomainMetric(subs), "eval/dev")
        let e = try heuristicCore(
            subs, layout: layout, rule: MatchRule(metric: "eval/dev", reference: 0.9, margin: 0.02, minimumCount: 3),
            permutations: 10)
        XCTAssertEqual(e.report.subnetworks, ["s0", "s1", "s3"])
        XCTAssertEqual(e.excluded, ["s2"])
        XCTAssertThrowsError(
            try heuristicCore(
                subs, layout: layout, rule: MatchRule(metric: "eval/dev", reference: 0.9, margin: 0.02, minimumCount: 4)
            ))
        XCTAssertThrowsError(try heuristicCore(subs, layout: layout, rule: MatchRule(metric: "eval/mnli")))
    }
}
