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
            let c = AttentionCase(heads: heads, headDim: d, lengths: lengths, rng: &rng)
            let (offsets, ld) = (c.offsets, c.ld)
            for threads in [1, 2] {
                let dqkv = c.run(threads: threads).dqkv
                for s in 0..<lengths.count {
                    let ref = attentionBackwardReference(
                        qkv: Array(c.qkv[(offsets[s] * ld)..<(offsets[s + 1] * ld)]),
                        dctx: Array(c.dctx[(offsets[s] * heads * d)..<(offsets[s + 1] * heads * d)]),
                        t: lengths[s], heads: heads, headDim: d)
                    let got = Array(dqkv[(offsets[s] * ld)..<(offsets[s + 1] * ld)])
                    XCTAssertLessThan(maxAbsDiff(got, ref), 1e-4, "heads \(heads) d \(d) seq \(s) threads \(threads)")
                }
            }
        }
    }
}
