// Vectorised elementwise kernels: exp, GELU (exact erf form) and its derivative, LayerNorm, softmax, adds.
// Each fast kernel has a plainly written twin (suffix `Reference`) built on libm, used by the tests.
import Foundation

public typealias Vec16 = SIMD16<Float>

/// 64-byte aligned, uninitialised storage for `count` floats (at least one). Caller deallocates.
public func allocateFloats(_ count: Int) -> UnsafeMutablePointer<Float> {
    let raw = UnsafeMutableRawPointer.allocate(byteCount: max(1, count) * 4, alignment: 64)
    return raw.bindMemory(to: Float.self, capacity: max(1, count))
}

/// The eight Floats as Doubles (exact). Spelled lane by lane, this compiles to one conversion instruction, where
/// SIMD8<Double>(_:) over a SIMD8<Float> is a generic call converting one lane at a time.
@inline(__always)
public func widen(_ v: SIMD8<Float>) -> SIMD8<Double> {
    SIMD8<Double>(
        Double(v[0]), Double(v[1]), Double(v[2]), Double(v[3]), Double(v[4]), Double(v[5]), Double(v[6]),
        Double(v[7]))
}

/// The eight Doubles rounded to Floats as Float(_:) rounds each, in one conversion instruction (see `widen`).
@inline(__always)
public func narrow(_ v: SIMD8<Double>) -> SIMD8<Float> {
    SIMD8<Float>(
        Float(v[0]), Float(v[1]), Float(v[2]), Float(v[3]), Float(v[4]), Float(v[5]), Float(v[6]), Float(v[7]))
}

/// dst[i] += src[i]
@inline(__always)
public func addVectors(_ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>, count: Int) {
    combineVectors(dst, src, count: count, { $0 + $1 }, { $0 + $1 })
}

/// dst[i] *= src[i]
@inline(__always)
public func multiplyVectors(_ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>, count: Int) {
    combineVectors(dst, src, count: count, { $0 * $1 }, { $0 * $1 })
}

/// dst[i] = op(dst[i], src[i]), sixteen lanes at a time, then the tail one by one (the same operation per value).
@inline(__always)
func combineVectors(
    _ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>, count: Int, _ vector: (Vec16, Vec16) -> Vec16,
    _ scalar: (Float, Float) -> Float
) {
    var i = 0
    let d = UnsafeMutableRawPointer(dst)
    let s = UnsafeRawPointer(src)
    while i + 16 <= count {
        let v = vector(
            d.loadUnaligned(fromByteOffset: i * 4, as: Vec16.self),
            s.loadUnaligned(fromByteOffset: i * 4, as: Vec16.self))
        d.storeBytes(of: v, toByteOffset: i * 4, as: Vec16.self)
        i += 16
    }
    while i < count {
        dst[i] = scalar(dst[i], src[i])
        i += 1
    }
}

// MARK: exp

/// e^x for 16 lanes. Range reduction x = n·ln2 + r, |r| ≤ ln2/2, then a degree-7 Taylor polynomial
/// (truncation error r⁸/8! < 6e-9 relative) and 2ⁿ built in the exponent bits. Below −87.3 → 0.
@inline(__always)
public func exp16(_ x: Vec16) -> Vec16 {
    // (SIMD's generic clamped/pointwiseMin are not inlined; `replacing(with:where:)` is a blend.)
    let low = x.replacing(with: -87.3, where: x .< -87.3)
    let clamped = low.replacing(with: 88.7, where: low .> 88.7)
    // Round x·log2(e) to an integer n with the 1.5·2²³ trick: adding it leaves n in the low mantissa bits.
    // (Swift's generic SIMD float→int conversion compiles to a scalar loop; this stays in vector registers.)
    let magic = Vec16(repeating: 12_582_912)
    let shifted = clamped * 1.442695040888963 + magic
    let n = shifted - magic
    var r = clamped
    r.addProduct(n, Vec16(repeating: -0.693145751953125))  // ln2 high part (n·hi exact in fp32)
    r.addProduct(n, Vec16(repeating: -1.428606765330187e-06))  // ln2 low part
    // Horner steps as fused multiply-adds (`p * r + c` would compile to a separate multiply and add).
    var p = Vec16(repeating: 1.0 / 5040)
    p = horner(p, r, 1.0 / 720)
    p = horner(p, r, 1.0 / 120)
    p = horner(p, r, 1.0 / 24)
    p = horner(p, r, 1.0 / 6)
    p = horner(p, r, 0.5)
    p = horner(p, r, 1)
    p = horner(p, r, 1)
    let ni = unsafeBitCast(shifted, to: SIMD16<Int32>.self) &- 0x4B40_0000
    let scale = unsafeBitCast((ni &+ 127) &<< 23, to: Vec16.self)
    return (p * scale).replacing(with: 0, where: x .< -87.3)
}

/// One Horner step p·x + c as a single fused multiply-add.
@inline(__always)
func horner(_ p: Vec16, _ x: Vec16, _ c: Float) -> Vec16 {
    var out = Vec16(repeating: c)
    out.addProduct(p, x)
    return out
}

/// e^x for one value through the same vector code (so scalar tails round like vector bodies).
@inline(__always)
public func exp1(_ x: Float) -> Float { exp16(Vec16(repeating: x))[0] }

// MARK: GELU

/// gelu(x) = x·Φ(x) = ½x·(1 + erf(x/√2)), the exact (erf) GELU of BERT's `hidden_act: "gelu"` — not the
/// tanh approximation (whose error is ~1e-3).
///
/// erf(z) = z·P(z²)/Q(z²) with P, Q of degree 5, fitted by scripts/fit_gelu_erf.py (reweighted least squares towards
/// minimax on [0, 3.9]; approximation error 1.5e-8) and z clamped to ±3.9, where erf rounds to ±1 within
/// 3.5e-8: 11 multiply-adds, 4 multiplies, 2 clamps and a divide per vector, against ~40 operations and a
/// divide for erfc from its exponential form. Worst error over [−14, 14], swept every
/// 1e-4: 2.1e-7·max(1, |x|) against the correctly rounded value (1.7e-7 against the exact one); PyTorch's own
/// `F.gelu` measures 3.5e-7·max(1, |x|) on this machine. The error is absolute: for x < −3, where gelu(x) is
/// below 4e-3, it is small against the layer's scale, not against gelu(x) itself.
@inline(__always)
public func gelu16(_ x: Vec16) -> Vec16 { geluAndErf16(x).gelu }

/// gelu16's value and the erf(x/√2) it is made from.
@inline(__always)
func geluAndErf16(_ x: Vec16) -> (gelu: Vec16, erf: Vec16) {
    var z = x * 0.70710678118654752
    z = z.replacing(with: 3.9, where: z .> 3.9)
    z = z.replacing(with: -3.9, where: z .< -3.9)
    let s = z * z
    var p = Vec16(repeating: 2.874355414e-04)
    p.addProduct(Vec16(repeating: 2.050359399e-06), s)
    p = horner(p, s, 3.836323041e-03)
    p = horner(p, s, 5.296520516e-02)
    p = horner(p, s, 1.919294000e-01)
    p = horner(p, s, 1.128378987e+00)  // 2/√π
    var q = Vec16(repeating: 1.181582455e-03)
    q.addProduct(Vec16(repeating: 3.822930739e-05), s)
    q = horner(q, s, 1.510811411e-02)
    q = horner(q, s, 1.147532389e-01)
    q = horner(q, s, 5.034247637e-01)
    q = horner(q, s, 1)
    let erf = z * p / q
    let half = 0.5 * x
    var g = half
    g.addProduct(half, erf)  // ½x + ½x·erf in one rounding
    return (g, erf)
}

/// `body` over 0..<rows in fixed blocks of 32 rows, the blocks shared by the pool's threads: for passes over a
/// layer's activations whose values do not depend on how the rows are split (the blocks, not the threads, fix
/// any reduction's order).
public func parallelRowBlocks(_ rows: Int, pool: ThreadPool, _ body: (Range<Int>) -> Void) {
    let block = 32
    pool.parallelFor((rows + block - 1) / block) { b in body((b * block)..<min(rows, (b + 1) * block)) }
}

/// The GELU derivative Φ(x) + x·φ(x), for the backward pass.
@inline(__always)
public func geluGrad16(_ x: Vec16) -> Vec16 { geluWithGrad16(x).grad }

/// gelu16's value and the derivative Φ(x) + x·φ(x) from the same erf: Φ = ½ + ½·erf(x/√2) (absolute error
/// ~1e-7, a gradient's scale) and φ(x) = e^(−x²/2)/√(2π) — one divide and one exponential a lane.
@inline(__always)
func geluWithGrad16(_ x: Vec16) -> (gelu: Vec16, grad: Vec16) {
    let (gelu, erf) = geluAndErf16(x)
    var phi = Vec16(repeating: 0.5)
    phi.addProduct(Vec16(repeating: 0.5), erf)
    var grad = phi
    grad.addProduct(x, exp16(-0.5 * x * x) * 0.3989422804014327)
    return (gelu, grad)
}

/// out = gelu(u) and u ← gelu'(u): the forward of a layer whose backward needs only the derivative. The values
/// are `gelu16`'s, the same as the inference epilogue's (`.biasGELU`), so a training-mode pass computes
/// bit for bit what inference computes.
public func geluWithDerivative(_ u: UnsafeMutablePointer<Float>, out: UnsafeMutablePointer<Float>, count: Int) {
    var i = 0
    while i + 16 <= count {
        let (g, d) = geluWithGrad16(UnsafeRawPointer(u + i).loadUnaligned(as: Vec16.self))
        UnsafeMutableRawPointer(out + i).storeBytes(of: g, as: Vec16.self)
        UnsafeMutableRawPointer(u + i).storeBytes(of: d, as: Vec16.self)
        i += 16
    }
    while i < count {
        let (g, d) = geluWithGrad16(Vec16(repeating: u[i]))
        out[i] = g[0]
        u[i] = d[0]
        i += 1
    }
}

public func geluInPlace(_ p: UnsafeMutablePointer<Float>, count: Int) {
    let raw = UnsafeMutableRawPointer(p)
    var i = 0
    while i + 16 <= count {
        raw.storeBytes(
            of: gelu16(raw.loadUnaligned(fromByteOffset: i * 4, as: Vec16.self)), toByteOffset: i * 4, as: Vec16.self)
        i += 16
    }
    if i < count {
        var v = Vec16()
        for j in i..<count { v[j - i] = p[j] }
        let g = gelu16(v)
        for j in i..<count { p[j] = g[j - i] }
    }
}

// MARK: LayerNorm

/// out[i] = (x[i] − mean) / sqrt(var + eps) · gamma[i] + beta[i] over one row of `count` values,
/// biased variance, both accumulated in fp32 as PyTorch does. `out` may equal `x`.
/// Returns the row's mean and 1/sqrt(var + eps) (the backward pass needs both). With `scale`, that value is used
/// instead of the row's own (centring still uses the row's mean): a LayerNorm frozen at another run's scale,
/// linear in x.
@discardableResult
public func layerNormRow(
    _ x: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, count: Int,
    gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>, eps: Float, scale: Float? = nil
) -> (mean: Float, rstd: Float) {
    let xr = UnsafeRawPointer(x)
    var acc = Vec16()
    var i = 0
    while i + 16 <= count {
        acc += xr.loadUnaligned(fromByteOffset: i * 4, as: Vec16.self)
        i += 16
    }
    var sum = acc.sum()
    while i < count {
        sum += x[i]
        i += 1
    }
    let mean = sum / Float(count)
    let rstd = scale ?? rowScale(x, mean: mean, count: count, eps: eps)
    let o = UnsafeMutableRawPointer(out)
    let g = UnsafeRawPointer(gamma)
    let b = UnsafeRawPointer(beta)
    i = 0
    while i + 16 <= count {
        let v = (xr.loadUnaligned(fromByteOffset: i * 4, as: Vec16.self) - mean) * rstd
        var r = b.loadUnaligned(fromByteOffset: i * 4, as: Vec16.self)
        r.addProduct(v, g.loadUnaligned(fromByteOffset: i * 4, as: Vec16.self))
        o.storeBytes(of: r, toByteOffset: i * 4, as: Vec16.self)
        i += 16
    }
    while i < count {
        out[i] = (x[i] - mean) * rstd * gamma[i] + beta[i]
        i += 1
    }
    return (mean, rstd)
}

/// 1/sqrt(biased variance + eps) of one row with its mean.
@inline(__always)
func rowScale(_ x: UnsafePointer<Float>, mean: Float, count: Int, eps: Float) -> Float {
    let xr = UnsafeRawPointer(x)
    var i = 0
    var acc2 = Vec16()
    while i + 16 <= count {
        let d = xr.loadUnaligned(fromByteOffset: i * 4, as: Vec16.self) - mean
        acc2.addProduct(d, d)
        i += 16
    }
    var sq = acc2.sum()
    while i < count {
        let d = x[i] - mean
        sq += d * d
        i += 1
    }
    return 1 / (sq / Float(count) + eps).squareRoot()
}

/// What a LayerNorm pass does with its per-row scales 1/sqrt(var + eps): nothing, write them out, or use
/// given ones instead of its own (path patching with LayerNorm scales frozen at the clean run's).
public enum LayerNormScales {
    case record(UnsafeMutablePointer<Float>)  // [rows]
    case fixed(UnsafePointer<Float>)  // [rows]
}

/// Where a LayerNorm pass writes each row's mean and 1/sqrt(var + eps): what its backward reads.
public struct LayerNormStatistics {
    public let mean: UnsafeMutablePointer<Float>  // [rows]
    public let rstd: UnsafeMutablePointer<Float>  // [rows]
    public init(mean: UnsafeMutablePointer<Float>, rstd: UnsafeMutablePointer<Float>) {
        self.mean = mean
        self.rstd = rstd
    }
}

/// LayerNorm over `rows` rows of `count` values (row stride `count`), rows spread over the pool; `out` may be `x`.
/// `adding`: a row [count] added to every row of x first — a pruned attention block's or MLP's constant
/// contribution, folded into the LayerNorm pass instead of a separate sweep over [rows, count].
/// `statistics`: each row's mean and 1/σ written out, for the backward (`layerNormBackward`).
public func layerNorm(
    _ x: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, rows: Int, count: Int,
    adding: UnsafePointer<Float>? = nil,
    gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>, eps: Float,
    scales: LayerNormScales? = nil, statistics: LayerNormStatistics? = nil, pool: ThreadPool = .shared
) {
    let chunk = 64
    let xa = UInt(bitPattern: x)
    let oa = UInt(bitPattern: out)
    let ga = UInt(bitPattern: gamma)
    let ba = UInt(bitPattern: beta)
    let aa = adding.map { UInt(bitPattern: $0) }
    var recorded: UInt? = nil
    var fixed: UInt? = nil
    switch scales {
    case .record(let p)?: recorded = UInt(bitPattern: p)
    case .fixed(let p)?: fixed = UInt(bitPattern: p)
    case nil: break
    }
    let meanOut = statistics.map { UInt(bitPattern: $0.mean) }
    let rstdOut = statistics.map { UInt(bitPattern: $0.rstd) }
    pool.parallelFor((rows + chunk - 1) / chunk) { c in
        let x = UnsafePointer<Float>(bitPattern: xa)!
        let out = UnsafeMutablePointer<Float>(bitPattern: oa)!
        let g = UnsafePointer<Float>(bitPattern: ga)!
        let b = UnsafePointer<Float>(bitPattern: ba)!
        for r in (c * chunk)..<min(rows, (c + 1) * chunk) {
            let scale = fixed.map { UnsafePointer<Float>(bitPattern: $0)![r] }
            var input = x + r * count
            if let aa {
                let row = out + r * count
                if row != UnsafeMutablePointer(mutating: input) { row.update(from: input, count: count) }
                addVectors(row, UnsafePointer<Float>(bitPattern: aa)!, count: count)
                input = UnsafePointer(row)
            }
            let (mean, rstd) = layerNormRow(
                input, out + r * count, count: count, gamma: g, beta: b, eps: eps, scale: scale)
            if let recorded { UnsafeMutablePointer<Float>(bitPattern: recorded)![r] = rstd }
            if let meanOut, let rstdOut {
                UnsafeMutablePointer<Float>(bitPattern: meanOut)![r] = mean
                UnsafeMutablePointer<Float>(bitPattern: rstdOut)![r] = rstd
            }
        }
    }
}

// MARK: softmax

/// The largest lane, by halving (the standard library's `max()` is a generic call here, not inlined —
/// visible in profiles of short softmax rows). Exact, so any order gives the same value.
@inline(__always)
public func horizontalMax(_ v: Vec16) -> Float {
    var a8 = v.lowHalf
    let b8 = v.highHalf
    a8 = a8.replacing(with: b8, where: b8 .> a8)
    var a4 = a8.lowHalf
    let b4 = a8.highHalf
    a4 = a4.replacing(with: b4, where: b4 .> a4)
    let m01 = a4[0] > a4[1] ? a4[0] : a4[1]
    let m23 = a4[2] > a4[3] ? a4[2] : a4[3]
    return m01 > m23 ? m01 : m23
}
