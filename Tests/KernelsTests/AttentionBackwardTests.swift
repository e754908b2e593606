// Attention's backward (dQ, dK, dV from dctx and the stored probabilities) against the naive double twin
import TestSupport
import XCTest

@testable import Kernels

/// Attention's backward (dQ, dK, dV from dctx and the stored probabilities) against the naive double twin
/// that recomputes P: ragged packed sequences, head sizes that are and are not multiples of 16, 1 and 2 threads.
final class AttentionBackwardTests: XCTestCase {
    func testAgainstNaive() {
        var rng = SeededRNG(21)
        for (heads, d) in [(2, 8), (3, 32), (2, 20), (1, 64)] {
            let lengths = [1, 5, 16, 23]
            let offsets = lengths.reduce(into: [0]) { $0.append($0.last! + $1) }
            let tokens = offsets.last!
            let ld = 3 * heads * d
            let qkv = rng.floats(tokens * ld, scale: 0.5)
            let dctx = rng.floats(tokens * heads * d)
            var ctx = [Float](repeating: 0, count: tokens * heads * d)
            var probs = [Float](repeating: 0, count: attentionProbOffsets(offsets: offsets, heads: heads).last!)
            qkv.withUnsafeBufferPointer { q in
                ctx.withUnsafeMutableBufferPointer { c in
                    probs.withUnsafeMutableBufferPointer { p in
                        attention(
                            qkv: q.baseAddress!, ldqkv: ld, heads: heads, headDim: d, offsets: offsets,
                            ctx: c.baseAddress!, ldctx: heads * d, probs: p.baseAddress!)
                    }
                }
            }
            for threads in [1, 2] {
                var dqkv = [Float](repeating: .nan, count: tokens * ld)
                qkv.withUnsafeBufferPointer { q in
                    probs.withUnsafeBufferPointer { p in
                        dctx.withUnsafeBufferPointer { g in
                            dqkv.withUnsafeMutableBufferPointer { o in
                                attentionBackward(
                                    qkv: q.baseAddress!, ldqkv: ld, probs: p.baseAddress!, dctx: g.baseAddress!,
                                    ldctx: heads * d, heads: heads,
                                    headDim: d, offsets: offsets, dqkv: o.baseAddress!, pool: ThreadPool.sized(threads))
                            }
                        }
                    }
                }
                for s in 0..<lengths.count {
                    let ref = attentionBackwardReference(
                        qkv: Array(qkv[(offsets[s] * ld)..<(offsets[s + 1] * ld)]),
                        dctx: Array(dctx[(offsets[s] * heads * d)..<(offsets[s + 1] * heads * d)]),
                        t: lengths[s], heads: heads, headDim: d)
                    let got = Array(dqkv[(offsets[s] * ld)..<(offsets[s + 1] * ld)])
                    XCTAssertLessThan(maxAbsDiff(got, ref), 1e-4, "heads \(heads) d \(d) seq \(s) threads \(threads)")
                }
            }
        }
    }
}
