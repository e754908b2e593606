import TestSupport
import XCTest

@testable import Kernels

final class GEMMTests: XCTestCase {
    func runGemm(m: Int, n: Int, k: Int, epilogue: String, threads: Int, seed: UInt64) -> ([Float], [Float]) {
        var rng = SeededRNG(seed)
        let x = rng.floats(m * k)
        let w = rng.floats(n * k, scale: 0.1)
        let b = rng.floats(n)
        let res = rng.floats(m * n)
        let packed = PackedLinear(weight: w, bias: b, n: n, k: k)
        var out = [Float](repeating: .nan, count: m * n)
        let pool = ThreadPool.sized(threads)
        x.withUnsafeBufferPointer { xp in
            res.withUnsafeBufferPointer { rp in
                out.withUnsafeMutableBufferPointer { op in
                    let e: GemmEpilogue
                    switch epilogue {
                    case "none": e = .none
                    case "gelu": e = .biasGELU
                    case "residual": e = .biasResidual(rp.baseAddress!, ld: n)
                    default: e = .bias
                    }
                    gemm(
                        xp.baseAddress!, rows: m, lda: k, packed, out: op.baseAddress!, ldc: n, epilogue: e, pool: pool)
                }
            }
        }
        var ref = gemmReference(x: x, m: m, k: k, weight: w, bias: epilogue == "none" ? nil : b, n: n)
        if epilogue == "gelu" { ref = ref.map(geluReference) }
        if epilogue == "residual" { for i in ref.indices { ref[i] += res[i] } }
        return (out, ref)
    }

    func testRaggedShapesAgainstNaive() {
        // M, N, K deliberately not multiples of MR, NR or KC; K > KC exercises slice accumulation.
        let shapes = [(1, 1, 1), (5, 7, 3), (6, 64, 384), (7, 65, 385), (13, 130, 800), (97, 33, 17), (200, 200, 769)]
        for (i, (m, n, k)) in shapes.enumerated() {
            for e in ["none", "bias", "gelu", "residual"] {
                for threads in [1, 2] {
                    let (out, ref) = runGemm(m: m, n: n, k: k, epilogue: e, threads: threads, seed: UInt64(i * 10 + 1))
                    // Error bound: fp32 accumulation over k terms of magnitude ~0.1·|x|.
                    let tol = Float(2e-6) * Float(k).squareRoot() * 4
                    XCTAssertLessThan(
                        maxAbsDiff(out, ref), tol, "m=\(m) n=\(n) k=\(k) epilogue=\(e) threads=\(threads)")
                }
            }
        }
    }

    /// A product over some of W's input columns (`inputs:`) equals the naive product with W cut to those columns,
    /// for ranges at W's start, end and middle, crossing a KC slice, and x's rows wider than the range (lda).
    func testInputRangeAgainstNaive() {
        var rng = SeededRNG(77)
        for (m, n, k, range, lda) in [
            (5, 7, 12, 0..<4, 12), (13, 65, 96, 32..<96, 100), (37, 130, 900, 100..<890, 900), (6, 33, 9, 4..<5, 9),
        ] {
            let x = rng.floats(m * lda)
            let w = rng.floats(n * k, scale: 0.1)
            let res = rng.floats(m * n)
            let packed = PackedLinear(weight: w, bias: nil, n: n, k: k)
            let cut = (0..<n).flatMap { r in w[(r * k + range.lowerBound)..<(r * k + range.upperBound)] }
            let xCut = (0..<m).flatMap { i in x[(i * lda)..<(i * lda + range.count)] }
            var ref = gemmReference(x: xCut, m: m, k: range.count, weight: cut, bias: nil, n: n)
            for i in ref.indices { ref[i] += res[i] }
            for threads in [1, 2] {
                var out = [Float](repeating: .nan, count: m * n)
                res.withUnsafeBufferPointer { rp in
                    gemm(
                        x, rows: m, lda: lda, packed, out: &out, ldc: n,
                        epilogue: .biasResidual(rp.baseAddress!, ld: n),
                        inputs: range, pool: .sized(threads))
                }
                let tol = Float(2e-6) * Float(range.count).squareRoot() * 4
                XCTAssertLessThan(maxAbsDiff(out, ref), tol, "\(m)×\(n)×\(k) over \(range), \(threads) threads")
            }
        }
    }

    /// The fast path must round exactly as documented in GEMM.swift — each output starts from its bias, adds
    /// x·w by fused multiply-adds with k ascending inside a KC slice, each later slice's partial sum (from
    /// zero) is added to C, then GELU or the residual — checked bit for bit against a scalar twin of that
    /// order, ragged tiles included, other tile sizes too, 1 and 2 threads.
    func testEpiloguesRoundInTheDocumentedOrder() {
        for (i, (m, n, k, kc, panels)) in [
            (7, 65, 385, 192, 4), (13, 130, 800, 128, 1), (97, 200, 17, 192, 2), (64, 256, 384, 96, 4),
        ].enumerated() {
            var rng = SeededRNG(UInt64(100 + i))
            let x = rng.floats(m * k)
            let w = rng.floats(n * k, scale: 0.1)
            let b = rng.floats(n)
            let res = rng.floats(m * n)
            let packed = PackedLinear(weight: w, bias: b, n: n, k: k)
            for e in ["none", "bias", "gelu", "residual"] {
                var expected = [Float](repeating: 0, count: m * n)
                for r in 0..<m {
                    for j in 0..<n {
                        var c: Float = e == "none" ? 0 : b[j]
                        var k0 = 0
                        while k0 < k {
                            var slice: Float = k0 == 0 ? c : 0
                            for kk in k0..<min(k, k0 + kc) { slice = slice.addingProduct(x[r * k + kk], w[j * k + kk]) }
                            c = k0 == 0 ? slice : c + slice
                            k0 += kc
                        }
                        if e == "gelu" { c = gelu16(Vec16(repeating: c))[0] }
                        if e == "residual" { c += res[r * n + j] }
                        expected[r * n + j] = c
                    }
                }
                for threads in [1, 2] {
                    var out = [Float](repeating: .nan, count: m * n)
                    x.withUnsafeBufferPointer { xp in
                        res.withUnsafeBufferPointer { rp in
                            out.withUnsafeMutableBufferPointer { op in
                                let epilogue: GemmEpilogue =
                                    e == "none"
                                    ? .none
                                    : e == "gelu"
                                        ? .biasGELU
                                        : e == "residual" ? .biasResidual(rp.baseAddress!, ld: n) : .bias
                                gemm(
                                    xp.baseAddress!, rows: m, lda: k, packed, out: op.baseAddress!, ldc: n,
                                    epilogue: epilogue,
                                    pool: .sized(threads), kc: kc, tilePanels: panels)
                            }
                        }
                    }
                    XCTAssertEqual(out, expected, "m=\(m) n=\(n) k=\(k) kc=\(kc) epilogue=\(e) threads=\(threads)")
                }
            }
        }
    }

    func testIndependentOfThreadCount() {
        let (one, _) = runGemm(m: 301, n: 777, k: 1000, epilogue: "gelu", threads: 1, seed: 7)
        let (two, _) = runGemm(m: 301, n: 777, k: 1000, epilogue: "gelu", threads: 2, seed: 7)
        let (three, _) = runGemm(m: 301, n: 777, k: 1000, epilogue: "gelu", threads: 3, seed: 7)
        XCTAssertEqual(one, two)
        XCTAssertEqual(one, three)
    }

    func testPackedWeightRoundTrip() {
        var rng = SeededRNG(3)
        let w = rng.floats(70 * 9)
        let p = PackedLinear(weight: w, bias: nil, n: 70, k: 9)
        for r in 0..<70 { for c in 0..<9 { XCTAssertEqual(p.weight(r, c), w[r * 9 + c]) } }
    }
}
