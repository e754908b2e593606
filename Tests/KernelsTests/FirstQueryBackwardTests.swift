// A last layer whose [CLS] rows alone reach the classifier runs attention for those queries only, and its backward
// forms only their terms (`firstQueryOnly`). Against the kernels run over every row with dctx zero past each
// sequence's first row: the same context and probability rows, and the same dQ, dK, dV to the rounding of a
// reordered sum (the dropped terms are exact zeros) — with and without probability dropout, on fast head sizes
// and the plain path.
import TestSupport
import XCTest

@testable import Kernels

final class FirstQueryBackwardTests: XCTestCase {
    func run(heads: Int, d: Int, dropout: Bool, firstQueryOnly: Bool, rng: inout SeededRNG) -> (
        ctx: [Float], probs: [Float], dqkv: [Float], offsets: [Int], base: [Int]
    ) {
        var c = AttentionCase(heads: heads, headDim: d, lengths: [1, 9, 33, 128], rng: &rng)
        let (offsets, base) = (c.offsets, c.probOffsets)
        // Only each sequence's first row has a context gradient (a last layer whose [CLS] rows alone continue).
        for s in 0..<(offsets.count - 1) {
            for r in (offsets[s] + 1)..<offsets[s + 1] { for i in 0..<(heads * d) { c.dctx[r * heads * d + i] = 0 } }
        }
        let drop = (0..<base.last!).map { _ in rng.uniform() < 0.3 ? Float(0) : Float(1 / 0.7) }
        let (ctx, probs, dqkv) = c.run(
            dropout: dropout ? drop : nil, scale: Float(1 / 0.7), firstQueryOnly: firstQueryOnly)
        return (ctx, probs, dqkv, offsets, base)
    }

    func testFirstQueryOnlyEqualsEveryRowWithZeroGradients() {
        for (heads, d) in [(2, 32), (1, 64), (3, 16), (2, 24)] {
            for dropout in [false, true] {
                var a = SeededRNG(41)
                var b = SeededRNG(41)
                let only = run(heads: heads, d: d, dropout: dropout, firstQueryOnly: true, rng: &a)
                let all = run(heads: heads, d: d, dropout: dropout, firstQueryOnly: false, rng: &b)
                let (offsets, base) = (all.offsets, all.base)
                for s in 0..<(offsets.count - 1) {
                    let (r, t) = (offsets[s], offsets[s + 1] - offsets[s])
                    for c in 0..<(heads * d) {
                        XCTAssertEqual(only.ctx[r * heads * d + c], all.ctx[r * heads * d + c], "ctx, d \(d)")
                    }
                    for h in 0..<heads {
                        for j in 0..<t {
                            XCTAssertEqual(only.probs[base[s] + h * t * t + j], all.probs[base[s] + h * t * t + j])
                        }
                    }
                }
                let scale = all.dqkv.map(abs).max()!
                XCTAssertGreaterThan(scale, 0)
                for i in 0..<all.dqkv.count {
                    XCTAssertEqual(
                        only.dqkv[i], all.dqkv[i], accuracy: 1e-6 * scale,
                        "dqkv[\(i)], heads \(heads), d \(d), dropout \(dropout)")
                }
            }
        }
    }
}
