import TestSupport
import XCTest

@testable import Kernels

/// A LayerNorm chain must write what the separate passes it replaces write, bit for bit (the model's inference
/// switches between them by whether anything observes the layer), and what the naive twin computes, to rounding.
final class LayerNormChainTests: XCTestCase {
    struct Case {
        let rows, count: Int
        let x, c1, c2, g1, b1, g2, b2: [Float]
        init(rows: Int, count: Int, seed: UInt64) {
            var rng = SeededRNG(seed)
            (self.rows, self.count) = (rows, count)
            x = rng.floats(rows * count, scale: 3)
            (c1, c2) = (rng.floats(count), rng.floats(count))
            (g1, b1, g2, b2) = (rng.floats(count), rng.floats(count), rng.floats(count), rng.floats(count))
        }

        /// LayerNorm₂(LayerNorm₁(x + c1) + c2) (or LayerNorm₁ alone) by two separate `layerNorm` passes.
        func separate(_ input: [Float], adding1: Bool, second: Bool) -> [Float] {
            var a = [Float](repeating: .nan, count: rows * count)
            var y = [Float](repeating: .nan, count: rows * count)
            layerNorm(
                input, &a, rows: rows, count: count, adding: adding1 ? c1 : nil, gamma: g1, beta: b1, eps: 1e-5)
            if !second { return a }
            layerNorm(a, &y, rows: rows, count: count, adding: c2, gamma: g2, beta: b2, eps: 1e-5)
            return y
        }

        /// The same by the naive twin.
        func naive(_ input: [Float], adding1: Bool, second: Bool) -> [Float] {
            (0..<rows).flatMap { r -> [Float] in
                let row = (0..<count).map { input[r * count + $0] + (adding1 ? c1[$0] : 0) }
                let a = layerNormReference(row, gamma: g1, beta: b1, eps: 1e-5)
                if !second { return a }
                return layerNormReference(zip(a, c2).map { $0 + $1 }, gamma: g2, beta: b2, eps: 1e-5)
            }
        }

        /// Runs `body` with the chain's steps (their pointers are lent to it only).
        func withSteps<T>(adding1: Bool, second: Bool, _ body: ([LayerNormStep]) -> T) -> T {
            let rows = [c1, c2, g1, b1, g2, b2]
            let flat = rows.flatMap { $0 }
            return flat.withUnsafeBufferPointer { f in
                let row = { (i: Int) in f.baseAddress! + i * count }
                let first = LayerNormStep(adding: adding1 ? row(0) : nil, gamma: row(2), beta: row(3), eps: 1e-5)
                let then = LayerNormStep(adding: row(1), gamma: row(4), beta: row(5), eps: 1e-5)
                return body(second ? [first, then] : [first])
            }
        }
    }

    /// Two rows at once are two rows alone, bit for bit, ragged widths included.
    func testRowPairIsTwoRows() {
        var rng = SeededRNG(90)
        for count in [1, 15, 16, 17, 100, 768] {
            let (x, g, b) = (rng.floats(2 * count, scale: 3), rng.floats(count), rng.floats(count))
            var (want, got) = ([Float](repeating: 0, count: 2 * count), [Float](repeating: .nan, count: 2 * count))
            x.withUnsafeBufferPointer { x in
                want.withUnsafeMutableBufferPointer { w in
                    for r in 0..<2 {
                        let (xr, wr) = (x.baseAddress! + r * count, w.baseAddress! + r * count)
                        layerNormRow(xr, wr, count: count, gamma: g, beta: b, eps: 1e-5)
                    }
                }
            }
            x.withUnsafeBufferPointer { x in
                got.withUnsafeMutableBufferPointer { o in
                    let (x0, o0) = (x.baseAddress!, o.baseAddress!)
                    layerNormRowPair(x0, o0, x0 + count, o0 + count, count: count, gamma: g, beta: b, eps: 1e-5)
                }
            }
            XCTAssertEqual(got, want, "count \(count)")
        }
    }

    /// The chain over a matrix, into another buffer and in place, one and two steps, ragged widths, 1–3 threads.
    func testChainEqualsSeparatePasses() {
        for (i, (rows, count)) in [(1, 17), (70, 768), (130, 33)].enumerated() {
            let t = Case(rows: rows, count: count, seed: UInt64(40 + i))
            for second in [false, true] {
                let want = t.separate(t.x, adding1: true, second: second)
                XCTAssertLessThan(maxAbsDiff(want, t.naive(t.x, adding1: true, second: second)), 5e-5)
                for threads in [1, 2, 3] {
                    for inPlace in [false, true] {
                        var buf = t.x
                        var out = [Float](repeating: .nan, count: rows * count)
                        t.withSteps(adding1: true, second: second) { steps in
                            buf.withUnsafeMutableBufferPointer { xp in
                                out.withUnsafeMutableBufferPointer { op in
                                    let target = inPlace ? xp.baseAddress! : op.baseAddress!
                                    let chain = LayerNormChain(steps, out: target, ld: count)
                                    layerNorm(
                                        xp.baseAddress!, rows: rows, count: count, chain: chain,
                                        pool: .sized(threads))
                                }
                            }
                        }
                        XCTAssertEqual(inPlace ? buf : out, want, "\(rows)×\(count) second \(second) \(threads)")
                        if !inPlace { XCTAssertEqual(buf, t.x, "the input was written") }
                    }
                }
            }
        }
    }

    /// Four steps (a layer with a pruned MLP, then a layer with neither heads nor MLP): four separate passes.
    func testFourStepsEqualFourPasses() {
        let t = Case(rows: 67, count: 768, seed: 50)
        let once = t.separate(t.x, adding1: true, second: true)
        let want = t.separate(once, adding1: true, second: true)
        for threads in [1, 2] {
            var buf = t.x
            t.withSteps(adding1: true, second: true) { steps in
                buf.withUnsafeMutableBufferPointer { xp in
                    let chain = LayerNormChain(steps + steps, out: xp.baseAddress!, ld: 768)
                    layerNorm(xp.baseAddress!, rows: 67, count: 768, chain: chain, pool: .sized(threads))
                }
            }
            XCTAssertEqual(buf, want, "\(threads) threads")
        }
    }

    /// W_O's product with the chain in its epilogue equals the product with the residual then the separate
    /// LayerNorm passes, bit for bit: in place (the chain's output is C) and with C as scratch (the output is the
    /// residual's buffer, as the model's layer does, or a third one); row counts below, at and past the tasks'
    /// split, K below and past one panel, 1–3 threads.
    func testNormalizedEpilogueEqualsProductThenPasses() {
        for (i, (m, n, k)) in [(1, 768, 64), (5, 65, 100), (32, 768, 64), (97, 130, 192), (301, 768, 70)].enumerated() {
            let t = Case(rows: m, count: n, seed: UInt64(60 + i))
            var rng = SeededRNG(UInt64(80 + i))
            let (x, w, b) = (rng.floats(m * k), rng.floats(n * k, scale: 0.1), rng.floats(n))
            let packed = PackedLinear(weight: w, bias: b, n: n, k: k)
            var g = [Float](repeating: .nan, count: m * n)
            gemm(x, rows: m, lda: k, packed, out: &g, ldc: n, epilogue: .biasResidual(t.x, ld: n))
            for second in [false, true] {
                let want = t.separate(g, adding1: false, second: second)
                for threads in [1, 2, 3] {
                    for target in ["C", "residual", "other"] where second || target == "C" {
                        var (c, residual) = ([Float](repeating: .nan, count: m * n), t.x)
                        var other = [Float](repeating: .nan, count: m * n)
                        t.withSteps(adding1: false, second: second) { steps in
                            c.withUnsafeMutableBufferPointer { cp in
                                residual.withUnsafeMutableBufferPointer { rp in
                                    other.withUnsafeMutableBufferPointer { op in
                                        let out =
                                            target == "C"
                                            ? cp.baseAddress! : target == "residual" ? rp.baseAddress! : op.baseAddress!
                                        let chain = LayerNormChain(steps, out: out, ld: n)
                                        gemm(
                                            x, rows: m, lda: k, packed, out: cp.baseAddress!, ldc: n,
                                            epilogue: .biasResidualNormalized(rp.baseAddress!, ld: n, chain),
                                            pool: .sized(threads))
                                    }
                                }
                            }
                        }
                        let got = target == "C" ? c : target == "residual" ? residual : other
                        let name = "\(m)×\(n)×\(k) second \(second) into \(target)"
                        XCTAssertEqual(got, want, "\(name), \(threads) threads")
                    }
                }
            }
        }
    }
}
