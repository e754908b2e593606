// The weight-training backward of a Linear: dW, db against the naive double-precision twin, ragged
import TestSupport
import XCTest

@testable import Kernels

/// The weight-training backward of a Linear: dW, db against the naive double-precision twin, ragged
/// shapes, 1 and 2 threads; and dx through the transposed pack against a plain loop.
final class LinearBackwardTests: XCTestCase {
    func testWeightGradientsAgainstNaive() {
        var rng = SeededRNG(77)
        for (rows, out, inp) in [(1, 1, 1), (7, 5, 3), (33, 70, 19), (130, 65, 129), (5, 200, 7)] {
            let dy = rng.floats(rows * out)
            let x = rng.floats(rows * inp)
            let ref = linearGradientsReference(dy: dy, x: x, rows: rows, out: out, inp: inp)
            for threads in [1, 2] {
                var dW = [Float](repeating: 0.5, count: out * inp)
                var db = [Float](repeating: -0.25, count: out)  // accumulates onto these
                dy.withUnsafeBufferPointer { d in
                    x.withUnsafeBufferPointer { xx in
                        dW.withUnsafeMutableBufferPointer { w in
                            db.withUnsafeMutableBufferPointer { b in
                                accumulateLinearGradients(
                                    dy: d.baseAddress!, ldy: out, x: xx.baseAddress!, ldx: inp, rows: rows, out: out,
                                    inp: inp,
                                    dW: w.baseAddress!, db: b.baseAddress!, pool: ThreadPool.sized(threads))
                            }
                        }
                    }
                }
                XCTAssertLessThan(
                    maxAbsDiff(dW, ref.dW.map { $0 + 0.5 }), 1e-4 * Float(rows).squareRoot(),
                    "dW \(rows)x\(out)x\(inp) threads \(threads)")
                XCTAssertLessThan(
                    maxAbsDiff(db, ref.db.map { $0 - 0.25 }), 1e-4 * Float(rows).squareRoot(),
                    "db \(rows)x\(out)x\(inp)")
            }
            // dx = dy · W through the transposed pack.
            let w = rng.floats(out * inp)
            let t = PackedLinear(weight: w, bias: rng.floats(out), n: out, k: inp).transposedForBackward()
            var dx = [Float](repeating: 0, count: rows * inp)
            dy.withUnsafeBufferPointer { d in
                dx.withUnsafeMutableBufferPointer {
                    gemm(d.baseAddress!, rows: rows, lda: out, t, out: $0.baseAddress!, ldc: inp, epilogue: .none)
                }
            }
            var naive = [Float](repeating: 0, count: rows * inp)
            for r in 0..<rows {
                for i in 0..<inp {
                    var s = 0.0
                    for o in 0..<out { s += Double(dy[r * out + o]) * Double(w[o * inp + i]) }
                    naive[r * inp + i] = Float(s)
                }
            }
            XCTAssertLessThan(maxAbsDiff(dx, naive), 1e-4 * Float(out).squareRoot(), "dx \(rows)x\(out)x\(inp)")
        }
    }
}
