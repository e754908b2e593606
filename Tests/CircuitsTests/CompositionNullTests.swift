// The anti-causal null of composition: one pool per layer pair of H² scores; percentiles, z and the null of
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

/// The anti-causal null of composition: one pool per layer pair of H² scores, percentiles and z; and each
/// receiver's own null (the maximum over sender sets drawn outside the core), against an enumeration.
final class CompositionNullTests: XCTestCase {
    func testPoolsPercentilesAndMaxima() throws {
        let grid = (0..<100).map { (Double($0) + 0.5) / 100 }
        let synthetic = grid.flatMap { g in
            [
                CompositionScore(from: (1, 0), to: (0, 0), q: g, k: g, v: g),
                CompositionScore(from: (2, 0), to: (0, 0), q: g, k: g, v: g),
            ]
        }
        let null = CompositionNull(antiCausal: synthetic)
        XCTAssertEqual(null.percentile(0.5, from: 0, to: 1, kind: 0), 0.5)
        XCTAssertEqual(null.percentile(2, from: 0, to: 2, kind: 2), 1)
        XCTAssertEqual(null.percentile(0, from: 0, to: 1, kind: 1), 0)
        XCTAssertEqual(null.z(0.5, from: 0, to: 1, kind: 0), 0, accuracy: 1e-9)

        let model = try BertModel.load(folder: repoRoot + "/Tests/Fixtures/models/minilm-nli")
        let real = CompositionNull(model: model, foldLayerNorm: false)
        for a in 0..<6 { for b in (a + 1)..<6 { XCTAssertEqual(real.pool(a, b, 0).count, 144, "\(a)-\(b)") } }
        XCTAssertTrue(real.pool(1, 0, 0).isEmpty)
        // Real scores spread over the null: not all above it, not all below it.
        let report = CompositionReport(model: model, foldLayerNorm: false)
        let pct = report.scores.map { real.percentile($0.q, from: $0.from.layer, to: $0.to.layer, kind: 0) }
        XCTAssertTrue(pct.contains { $0 < 0.5 } && pct.contains { $0 > 0.9 })
    }

    /// Layer 0 of four heads, the core {a0.h0, a0.h1}; receiver a1.h0 scores 0.9, 0.2 | 0.5, 0.7 (Q) with the
    /// four. Its null draws two of the two non-core heads: always {a0.h2, a0.h3}, maximum 0.7 < 0.9, so p is
    /// 1 / (1 + draws). Receiver a1.h1 (core 0.3, 0.2; others 0.8, 0.1) has null maximum 0.8 ≥ 0.3 every time:
    /// p = 1. With the core {a0.h0} alone the null draws one of three (0.2, 0.5, 0.7 for a1.h0 — all below
    /// 0.9: p = 1/(1 + draws)); for a1.h1 (0.2, 0.8, 0.1 against 0.3) a third of the draws reach it.
    func testReceiverConditionedNullAgainstEnumeration() {
        let table: [[Double]] = [[0.9, 0.2, 0.5, 0.7], [0.3, 0.2, 0.8, 0.1]]
        var scores: [CompositionScore] = []
        for a in 0..<4 {
            for b in 0..<2 {
                scores.append(CompositionScore(from: (0, a), to: (1, b), q: table[b][a], k: 0, v: 0))
            }
        }
        let report = CompositionReport(scores: scores, baseline: (0, 0, 0), foldLayerNorm: false)
        let two = report.conditionedReceivers(core: [(0, 0), (0, 1)], layers: 2, heads: 4, draws: 999, seed: 1)
        XCTAssertEqual(two.map { [$0.head.layer, $0.head.head] }, [[1, 0], [1, 1], [1, 2], [1, 3]])
        XCTAssertEqual(two[0].best[0], 0.9)
        XCTAssertEqual(two[0].p[0], 1.0 / 1000)
        XCTAssertEqual(two[1].p[0], 1)
        XCTAssertEqual(two[0].nullMedian[0], 0.7)
        let one = report.conditionedReceivers(core: [(0, 0)], layers: 2, heads: 4, draws: 30_000, seed: 2)
        XCTAssertEqual(one.count, 4)  // a1.h0 … a1.h3; h2 and h3 score 0 with every sender
        XCTAssertEqual(one[0].p[0], 1.0 / 30_001)
        XCTAssertEqual(one[1].p[0], 1.0 / 3, accuracy: 0.01)
        // q is Benjamini–Hochberg over every receiver and kind.
        let all = one.flatMap(\.p)
        XCTAssertEqual(one.flatMap(\.q), benjaminiHochberg(all))
    }
}
