// LayerNorm's backward (input gradient, and γ/β gradients) against the Double Jacobian twin, on row
import TestSupport
import XCTest

@testable import Kernels

/// LayerNorm's backward (input gradient, and γ/β gradients) against the Double Jacobian twin, on row
/// widths that are and are not multiples of 16, 1 and 2 threads; the forward's recorded statistics too.
final class LayerNormBackwardTests: XCTestCase {
    func testAgainstJacobianTwin() {
        var rng = SeededRNG(31)
        for (rows, n) in [(1, 1), (3, 7), (5, 16), (9, 33), (4, 384)] {
            let x = rng.floats(rows * n, scale: 2).map { $0 + 0.5 }
            let dy = rng.floats(rows * n)
            let gamma = rng.floats(n).map { 1 + 0.2 * $0 }
            let beta = rng.floats(n)
            let eps: Float = 1e-12
            var y = [Float](repeating: 0, count: rows * n)
            var mean = [Float](repeating: 0, count: rows)
            var rstd = mean
            recordingLayerNorm(
                x, &y, rows: rows, count: n, gamma: gamma, beta: beta, eps: eps, mean: &mean, rstd: &rstd)
            let forward = (0..<rows).flatMap { r in
                layerNormReference(Array(x[r * n..<(r + 1) * n]), gamma: gamma, beta: beta, eps: eps)
            }
            assertClose(y, forward, bound: 2e-5, "forward \(rows)×\(n)")
            let ref = layerNormBackwardReference(dy: dy, x: x, gamma: gamma, rows: rows, count: n, eps: eps)
            for threads in [1, 2] {
                var dx = [Float](repeating: .nan, count: rows * n)
                layerNormBackward(
                    dy, x: x, mean: mean, rstd: rstd, gamma: gamma, rows: rows, count: n, dx: &dx, pool: .sized(threads)
                )
                assertClose(dx, ref.dx, bound: 1e-5 * Float(n).squareRoot(), "dx \(rows)×\(n), \(threads) threads")
            }
            var dGamma = [Float](repeating: 0.25, count: n)
            var dBeta = [Float](repeating: -0.5, count: n)  // accumulates onto these
            layerNormParameterGradients(
                dy, x: x, mean: mean, rstd: rstd, rows: rows, count: n, dGamma: &dGamma, dBeta: &dBeta)
            assertClose(dGamma, ref.dGamma.map { $0 + 0.25 }, bound: 1e-5 * Float(rows), "dγ \(rows)×\(n)")
            assertClose(dBeta, ref.dBeta.map { $0 - 0.5 }, bound: 1e-5 * Float(rows), "dβ \(rows)×\(n)")
        }
    }

    /// `layerNorm` writing the statistics its backward reads.
    func recordingLayerNorm(
        _ x: [Float], _ y: inout [Float], rows: Int, count: Int, gamma: [Float], beta: [Float], eps: Float,
        mean: inout [Float], rstd: inout [Float]
    ) {
        mean.withUnsafeMutableBufferPointer { m in
            rstd.withUnsafeMutableBufferPointer { r in
                layerNorm(
                    x, &y, rows: rows, count: count, gamma: gamma, beta: beta, eps: eps,
                    statistics: LayerNormStatistics(mean: m.baseAddress!, rstd: r.baseAddress!))
            }
        }
    }

    /// A constant row has x̂ = 0 and rstd = 1/√eps: the backward stays finite and matches the twin.
    func testConstantRowIsFinite() {
        let x: [Float] = [3, 3, 3, 3]
        let dy: [Float] = [1, -2, 0.5, 4]
        let g: [Float] = [1, 1, 1, 1]
        let ref = layerNormBackwardReference(dy: dy, x: x, gamma: g, rows: 1, count: 4, eps: 1e-5)
        var y = [Float](repeating: 0, count: 4)
        var mean: [Float] = [0]
        var rstd: [Float] = [0]
        var dx = y
        recordingLayerNorm(x, &y, rows: 1, count: 4, gamma: g, beta: [0, 0, 0, 0], eps: 1e-5, mean: &mean, rstd: &rstd)
        layerNormBackward(dy, x: x, mean: mean, rstd: rstd, gamma: g, rows: 1, count: 4, dx: &dx)
        XCTAssertTrue(dx.allSatisfy(\.isFinite))
        assertClose(dx, ref.dx, bound: 1e-3, "constant row")
    }
}
