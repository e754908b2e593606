// First-query attention (the [CLS] row of the last layer, keys and values never formed) against keys and values
// formed in Double.
import TestSupport
import XCTest

@testable import Kernels

final class FirstQueryAttentionTests: XCTestCase {
    /// The two small products it is made of, against plain loops, on ragged shapes (rows past a block of 4,
    /// columns past 64/16, k not a multiple of 16) — Float accumulation in the same k order, so a tight bound.
    func testSmallProductsAgainstNaive() {
        var rng = SeededRNG(41)
        for m in [1, 3, 4, 5, 9] {
            for n in [1, 15, 16, 17, 63, 64, 65, 130] {
                for k in [1, 7, 16, 33] {
                    let (lda, ldb, ldo) = (k + 3, n + 5, n + 2)
                    let a = rng.floats(m * lda)
                    let b = rng.floats(k * ldb)
                    let bt = rng.floats(n * (k + 1))
                    var nn = [Float](repeating: .nan, count: m * ldo)
                    var nt = [Float](repeating: .nan, count: m * ldo)
                    a.withUnsafeBufferPointer { ap in
                        b.withUnsafeBufferPointer { bp in
                            bt.withUnsafeBufferPointer { tp in
                                nn.withUnsafeMutableBufferPointer { op in
                                    rowMajorProduct(
                                        m: m, n: n, k: k, a: ap.baseAddress!, lda: lda, b: bp.baseAddress!, ldb: ldb,
                                        out: op.baseAddress!, ldo: ldo)
                                }
                                nt.withUnsafeMutableBufferPointer { op in
                                    rowDotProducts(
                                        m: m, n: n, k: k, a: ap.baseAddress!, lda: lda, b: tp.baseAddress!, ldb: k + 1,
                                        scale: 0.5, out: op.baseAddress!, ldo: ldo)
                                }
                            }
                        }
                    }
                    for i in 0..<m {
                        for j in 0..<ldo {
                            if j >= n {
                                XCTAssertTrue(nn[i * ldo + j].isNaN && nt[i * ldo + j].isNaN, "past n untouched")
                                continue
                            }
                            var wantNN = 0.0
                            var wantNT = 0.0
                            for kk in 0..<k {
                                wantNN += Double(a[i * lda + kk]) * Double(b[kk * ldb + j])
                                wantNT += Double(a[i * lda + kk]) * Double(bt[j * (k + 1) + kk])
                            }
                            XCTAssertEqual(
                                Double(nn[i * ldo + j]), wantNN, accuracy: 1e-5, "A·B m \(m) n \(n) k \(k) at \(i),\(j)"
                            )
                            XCTAssertEqual(
                                Double(nt[i * ldo + j]), 0.5 * wantNT, accuracy: 1e-5,
                                "A·Bᵀ m \(m) n \(n) k \(k) at \(i),\(j)")
                        }
                    }
                }
            }
        }
    }

    /// Against the definition — every token's key and value formed with their biases, in Double — on head
    /// shapes from tiny-bert's to bert-base's, ragged feature counts, lengths 1 to 130; 1 and 2 threads agree
    /// bit for bit. Scores are ~N(0, 1) as in a trained model. Worst error measured: 2.6e-6 on outputs up to 5.2
    /// (bound 1e-5); mutation-checked (bias of V left out, a scale of 1/d, the last head group not normalised).
    func testAgainstKeysAndValuesFormed() {
        var rng = SeededRNG(43)
        for (heads, d, D, lengths) in [
            (4, 8, 32, [1, 2, 3, 7, 16, 17, 40]), (3, 20, 50, [1, 5, 33, 66]),
            (12, 32, 384, [1, 7, 18, 40, 130]), (2, 64, 130, [2, 17, 64]),
            (12, 64, 768, [1, 5, 128]),
        ] {
            let width = heads * d
            let offsets = lengths.reduce(into: [0]) { $0.append($0.last! + $1) }
            let B = lengths.count
            let N = offsets.last!
            let x = rng.floats(N * D)
            let q = rng.floats(B * width)
            let wScale = 1 / Float(D).squareRoot()
            let wk = rng.floats(width * D, scale: wScale)
            let wv = rng.floats(width * D, scale: wScale)
            let bk = rng.floats(width)
            let bv = rng.floats(width)
            var wvT = [Float](repeating: 0, count: D * width)
            for o in 0..<width { for i in 0..<D { wvT[i * width + o] = wv[o * D + i] } }
            let want = firstQueryAttentionReference(
                x: x, features: D, offsets: offsets, queries: q, heads: heads, headDim: d,
                keyWeight: wk, keyBias: bk, valueWeight: wv, valueBias: bv)
            var first: [Float]?
            for threads in [1, 2] {
                let ldctx = width + 3
                var ctx = [Float](repeating: .nan, count: B * ldctx)
                x.withUnsafeBufferPointer { xp in
                    q.withUnsafeBufferPointer { qp in
                        wk.withUnsafeBufferPointer { kp in
                            wvT.withUnsafeBufferPointer { vp in
                                bv.withUnsafeBufferPointer { bp in
                                    ctx.withUnsafeMutableBufferPointer { cp in
                                        firstQueryAttention(
                                            x: xp.baseAddress!, ldx: D, features: D, offsets: offsets,
                                            queries: qp.baseAddress!,
                                            heads: heads, headDim: d, keyWeight: kp.baseAddress!,
                                            valueWeightT: vp.baseAddress!,
                                            valueBias: bp.baseAddress!, ctx: cp.baseAddress!, ldctx: ldctx,
                                            pool: ThreadPool.sized(threads))
                                    }
                                }
                            }
                        }
                    }
                }
                for s in 0..<B {
                    XCTAssertTrue(
                        ctx[(s * ldctx + width)..<((s + 1) * ldctx)].allSatisfy(\.isNaN), "past the context untouched")
                }
                let got = (0..<B).flatMap { ctx[($0 * ldctx)..<($0 * ldctx + width)] }
                XCTAssertLessThanOrEqual(maxAbsDiff(got, want), 1e-5, "heads \(heads) d \(d) D \(D)")
                if let first { XCTAssertEqual(first, got, "1 and 2 threads agree bit for bit") } else { first = got }
            }
        }
    }
}
