// Attention-probability dropout: the context (P ⊙ M) V and the backward that reads M, against the naive twins.
import TestSupport
import XCTest

@testable import Kernels

/// Attention-probability dropout: the context (P ⊙ M) V and the backward that reads M, against
/// the naive double twins, with multipliers 0 or 1/(1 − p) as training draws them.
final class AttentionDropoutTests: XCTestCase {
    func testAgainstNaive() {
        var rng = SeededRNG(23)
        for (heads, d) in [(2, 8), (3, 32), (1, 64)] {
            let lengths = [1, 7, 19]
            let c = AttentionCase(heads: heads, headDim: d, lengths: lengths, rng: &rng)
            let (offsets, base, ld, qkv, dctx) = (c.offsets, c.probOffsets, c.ld, c.qkv, c.dctx)
            let drop = (0..<base.last!).map { _ in rng.uniform() < 0.3 ? Float(0) : Float(1 / 0.7) }
            let (ctx, _, dqkv) = c.run(dropout: drop, scale: Float(1 / 0.7))
            for s in 0..<lengths.count {
                let t = lengths[s]
                let start = offsets[s]
                let m = Array(drop[base[s]..<base[s + 1]])
                // Naive forward: P from scratch in Double, then Σ_j P_ij M_ij V_j.
                var worst: Float = 0
                for h in 0..<heads {
                    for i in 0..<t {
                        let scores = (0..<t).map { j in
                            (0..<d).reduce(0.0) {
                                $0 + Double(qkv[(start + i) * ld + h * d + $1])
                                    * Double(qkv[(start + j) * ld + (heads + h) * d + $1])
                            } / Double(d).squareRoot()
                        }
                        let e = scores.map { exp($0 - scores.max()!) }
                        let z = e.reduce(0, +)
                        for c in 0..<d {
                            let want = (0..<t).reduce(0.0) {
                                $0 + e[$1] / z * Double(m[(h * t + i) * t + $1])
                                    * Double(qkv[(start + $1) * ld + (2 * heads + h) * d + c])
                            }
                            worst = max(worst, abs(ctx[(start + i) * heads * d + h * d + c] - Float(want)))
                        }
                    }
                }
                XCTAssertLessThan(worst, 1e-5, "context heads \(heads) d \(d) seq \(s)")
                let ref = attentionBackwardReference(
                    qkv: Array(qkv[(start * ld)..<(offsets[s + 1] * ld)]),
                    dctx: Array(dctx[(start * heads * d)..<(offsets[s + 1] * heads * d)]),
                    t: t, heads: heads, headDim: d, drop: m)
                XCTAssertLessThan(
                    maxAbsDiff(Array(dqkv[(start * ld)..<(offsets[s + 1] * ld)]), ref), 1e-4,
                    "backward heads \(heads) d \(d) seq \(s)")
            }
        }
    }
}
