import Dispatch

// The machine's FMA throughput: 12 independent chains of 16-wide fused multiply-adds per thread, enough
// to cover the FMA latency on two ports. Used by the benchmarks to express GEMM speed as % of peak.

@inline(never)
public func fmaPeakKernel(iterations: Int, seed: Float) -> Float {
    var a0 = Vec16(repeating: seed)
    var a1 = a0 + 0.1
    var a2 = a0 + 0.2
    var a3 = a0 + 0.3
    var a4 = a0 + 0.4
    var a5 = a0 + 0.5
    var a6 = a0 + 0.6
    var a7 = a0 + 0.7
    var a8 = a0 + 0.8
    var a9 = a0 + 0.9
    var a10 = a0 + 1.0
    var a11 = a0 + 1.1
    let m = Vec16(repeating: 0.999_999)
    let c = Vec16(repeating: 1e-7)
    for _ in 0..<iterations {
        a0.addProduct(a0, m)
        a1.addProduct(a1, m)
        a2.addProduct(a2, m)
        a3.addProduct(a3, m)
        a4.addProduct(a4, m)
        a5.addProduct(a5, m)
        a6.addProduct(a6, m)
        a7.addProduct(a7, m)
        a8.addProduct(a8, m)
        a9.addProduct(a9, m)
        a10.addProduct(a10, m)
        a11.addProduct(a11, m)
    }
    return (a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11 + c).sum()
}

/// GFLOP/s (2 per lane per FMA) of `threads` threads running `fmaPeakKernel` together.
public func fmaPeakGFLOPs(threads: Int, iterations: Int = 50_000_000) -> Double {
    let pool = ThreadPool.sized(threads)
    let start = DispatchTime.now().uptimeNanoseconds
    pool.parallelFor(threads) { i in _ = fmaPeakKernel(iterations: iterations, seed: Float(i) * 1e-3) }
    let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    return Double(threads * iterations * 12 * 16 * 2) / seconds / 1e9
}
