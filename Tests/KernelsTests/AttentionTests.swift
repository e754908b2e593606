// Attention over packed sequences against its naive twin, on ragged lengths, 1 and 2 threads.
import TestSupport
import XCTest

@testable import Kernels

final class AttentionTests: XCTestCase {
    func testTransposeRowsAgainstNaive() {
        var rng = SeededRNG(31)
        for rows in [1, 5, 15, 16, 17, 33, 48] {
            for width in [1, 7, 64, 100] {
                let ld = width + 3
                let ldT = (rows + 15) & ~15
                let src = rng.floats(rows * ld)
                var dst = [Float](repeating: .nan, count: width * ldT)
                src.withUnsafeBufferPointer { s in
                    dst.withUnsafeMutableBufferPointer { d in
                        transposeRows(s.baseAddress!, ld: ld, rows: rows, width: width, into: d.baseAddress!, ldT: ldT)
                    }
                }
                for c in 0..<width {
                    for j in 0..<ldT {
                        if j < rows {
                            XCTAssertEqual(
                                dst[c * ldT + j], src[j * ld + c], "rows \(rows) width \(width) c \(c) j \(j)")
                        } else {
                            XCTAssertTrue(dst[c * ldT + j].isNaN, "past the rows untouched")
                        }
                    }
                }
            }
        }
        XCTAssertGreaterThan(
            12 * 64 * 192, attentionTransposeFloats, "the attention test's t = 180 case takes the one-head path")
    }

    func testPackedSequencesAgainstNaive() {
        var rng = SeededRNG(9)
        for (heads, d) in [(4, 8), (12, 32), (3, 20), (2, 64), (12, 64)] {
            // Lengths cover every query-block remainder (t mod 4) and every key stage (64, 32, 16 keys);
            // 12 heads of 64 at t = 180 exceed `attentionTransposeFloats`, so keys go one head at a time there.
            let lengths = [1, 2, 3, 7, 16, 17, 40, 66, 130] + (heads * d == 768 ? [180] : [])
            let offsets = lengths.reduce(into: [0]) { $0.append($0.last! + $1) }
            let tokens = offsets.last!
            let ld = 3 * heads * d
            let qkv = rng.floats(tokens * ld)
            var firstCtx: [Float]?
            for threads in [1, 2] {
                var ctx = [Float](repeating: .nan, count: tokens * heads * d)
                var probs = [Float](repeating: .nan, count: attentionProbOffsets(offsets: offsets, heads: heads).last!)
                qkv.withUnsafeBufferPointer { q in
                    ctx.withUnsafeMutableBufferPointer { c in
                        probs.withUnsafeMutableBufferPointer { p in
                            attention(
                                qkv: q.baseAddress!, ldqkv: ld, heads: heads, headDim: d, offsets: offsets,
                                ctx: c.baseAddress!, ldctx: heads * d, probs: p.baseAddress!,
                                pool: ThreadPool.sized(threads))
                        }
                    }
                }
                // Every stored probability row is a distribution; thread count changes nothing.
                XCTAssertFalse(probs.contains { $0.isNaN }, "every probability written")
                if let firstCtx {
                    XCTAssertEqual(firstCtx, ctx, "1 and 2 threads agree bit for bit")
                } else {
                    firstCtx = ctx
                }
                let base = attentionProbOffsets(offsets: offsets, heads: heads)
                for s in 0..<lengths.count {
                    let t = lengths[s]
                    for r in 0..<(heads * t) {
                        let row = probs[(base[s] + r * t)..<(base[s] + (r + 1) * t)]
                        XCTAssertEqual(row.reduce(0, +), 1, accuracy: 1e-5)
                    }
                }
                for s in 0..<lengths.count {
                    let rows = Array(qkv[(offsets[s] * ld)..<(offsets[s + 1] * ld)])
                    let ref = attentionReference(qkv: rows, ldqkv: ld, t: lengths[s], heads: heads, headDim: d)
                    let got = Array(ctx[(offsets[s] * heads * d)..<(offsets[s + 1] * heads * d)])
                    XCTAssertLessThan(maxAbsDiff(got, ref), 2e-5, "heads \(heads) d \(d) seq \(s)")
                }
            }
        }
    }
}
