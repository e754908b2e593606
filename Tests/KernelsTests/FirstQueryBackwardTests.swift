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
        let lengths = [1, 9, 33, 128]
        let offsets = lengths.reduce(into: [0]) { $0.append($0.last! + $1) }
        let tokens = offsets.last!
        let ld = 3 * heads * d
        let base = attentionProbOffsets(offsets: offsets, heads: heads)
        let qkv = rng.floats(tokens * ld, scale: 0.5)
        var dctx = rng.floats(tokens * heads * d)
        for s in 0..<lengths.count {
            for r in (offsets[s] + 1)..<offsets[s + 1] { for c in 0..<(heads * d) { dctx[r * heads * d + c] = 0 } }
        }
        let drop = (0..<base.last!).map { _ in rng.uniform() < 0.3 ? Float(0) : Float(1 / 0.7) }
        var ctx = [Float](repeating: 0, count: tokens * heads * d)
        var probs = [Float](repeating: 0, count: base.last!)
        var dqkv = [Float](repeating: .nan, count: tokens * ld)
        qkv.withUnsafeBufferPointer { q in
            dropoutBitBytes(drop).withUnsafeBytes { m in
                let keep = dropout ? DropoutBits(bytes: m.baseAddress!, scale: Float(1 / 0.7)) : nil
                probs.withUnsafeMutableBufferPointer { p in
                    ctx.withUnsafeMutableBufferPointer { c in
                        attention(
                            qkv: q.baseAddress!, ldqkv: ld, heads: heads, headDim: d, offsets: offsets,
                            ctx: c.baseAddress!, ldctx: heads * d, probs: p.baseAddress!,
                            dropout: keep, firstQueryOnly: firstQueryOnly, pool: .sized(2))
                    }
                    dctx.withUnsafeBufferPointer { g in
                        dqkv.withUnsafeMutableBufferPointer { o in
                            attentionBackward(
                                qkv: q.baseAddress!, ldqkv: ld, probs: p.baseAddress!, dctx: g.baseAddress!,
                                ldctx: heads * d, heads: heads, headDim: d, offsets: offsets, dqkv: o.baseAddress!,
                                probDropout: keep, firstQueryOnly: firstQueryOnly,
                                pool: .sized(2))
                        }
                    }
                }
            }
        }
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
