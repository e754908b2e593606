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

/// The anti-causal null of composition: one pool per layer pair of H² scores; percentiles, z and the null of
/// a maximum over several senders (a maximum of two uniform draws is below its median with probability ¼).
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
        XCTAssertEqual(
            null.maxPercentile(0.5, senderLayers: [0, 0], receiver: 1, kind: 0, draws: 8000, seed: 2), 0.25,
            accuracy: 0.02)
        XCTAssertEqual(
            null.maxPercentile(0.5, senderLayers: [0], receiver: 1, kind: 0, draws: 8000, seed: 2), 0.5, accuracy: 0.02)

        let model = try BertModel.load(folder: repoRoot + "/Tests/Fixtures/models/minilm-nli")
        let real = CompositionNull(model: model, foldLayerNorm: false)
        for a in 0..<6 { for b in (a + 1)..<6 { XCTAssertEqual(real.pool(a, b, 0).count, 144, "\(a)-\(b)") } }
        XCTAssertTrue(real.pool(1, 0, 0).isEmpty)
        // Real scores spread over the null: not all above it, not all below it.
        let report = CompositionReport(model: model, foldLayerNorm: false)
        let pct = report.scores.map { real.percentile($0.q, from: $0.from.layer, to: $0.to.layer, kind: 0) }
        XCTAssertTrue(pct.contains { $0 < 0.5 } && pct.contains { $0 > 0.9 })
    }
}
