// The naive twins of the kernels: the same math written the plain way (Double where it matters, no tiling, no
// SIMD), each fast kernel's test compares against. They live with the tests so that no library carries code only
// a test calls.
import Foundation
import Kernels

/// Naive twin of `gemm`: out[i][j] = Σ_k x[i][k]·W[j][k] (+ bias[j]) accumulated in Double.
/// Written plainly so that it can be trusted; tests compare every fast path against it.
public func gemmReference(x: [Float], m: Int, k: Int, weight: [Float], bias: [Float]?, n: Int) -> [Float] {
    var out = [Float](repeating: 0, count: m * n)
    for i in 0..<m {
        for j in 0..<n {
            var s = 0.0
            for kk in 0..<k { s += Double(x[i * k + kk]) * Double(weight[j * k + kk]) }
            if let bias { s += Double(bias[j]) }
            out[i * n + j] = Float(s)
        }
    }
    return out
}

/// Naive twin of `attention` for one sequence (rows 0..<t of qkv, row stride ldqkv), in Double.
public func attentionReference(qkv: [Float], ldqkv: Int, t: Int, heads: Int, headDim d: Int) -> [Float] {
    var ctx = [Float](repeating: 0, count: t * heads * d)
    let scale = 1 / Double(d).squareRoot()
    for h in 0..<heads {
        for i in 0..<t {
            var scores = [Double](repeating: 0, count: t)
            for j in 0..<t {
                var s = 0.0
                for c in 0..<d {
                    s += Double(qkv[i * ldqkv + h * d + c]) * Double(qkv[j * ldqkv + (heads + h) * d + c])
                }
                scores[j] = s * scale
            }
            let m = scores.max()!
            let e = scores.map { Foundation.exp($0 - m) }
            let z = e.reduce(0, +)
            for c in 0..<d {
                var acc = 0.0
                for j in 0..<t { acc += e[j] / z * Double(qkv[j * ldqkv + (2 * heads + h) * d + c]) }
                ctx[i * heads * d + h * d + c] = Float(acc)
            }
        }
    }
    return ctx
}

public func layerNormReference(_ x: [Float], gamma: [Float], beta: [Float], eps: Float) -> [Float] {
    let n = Double(x.count)
    let mean = x.reduce(0.0) { $0 + Double($1) } / n
    let variance = x.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / n
    let rstd = 1 / (variance + Double(eps)).squareRoot()
    return x.indices.map { Float((Double(x[$0]) - mean) * rstd * Double(gamma[$0]) + Double(beta[$0])) }
}

public func geluReference(_ x: Float) -> Float {
    Float(0.5 * Double(x) * (1 + erf(Double(x) / 2.0.squareRoot())))
}

public func geluGradReference(_ x: Float) -> Float {
    let d = Double(x)
    return Float(0.5 * (1 + erf(d / 2.0.squareRoot())) + d * exp(-0.5 * d * d) / (2 * Double.pi).squareRoot())
}

public func softmaxReference(_ x: [Float]) -> [Float] {
    let m = x.max() ?? 0
    let e = x.map { exp(Double($0 - m)) }
    let s = e.reduce(0, +)
    return e.map { Float($0 / s) }
}

/// In-place softmax of one row: exp(x − max) / Σ.
public func softmaxRow(_ p: UnsafeMutablePointer<Float>, count: Int) {
    let raw = UnsafeMutableRawPointer(p)
    let body = count & ~15
    let tail = count - body
    // The last count mod 16 values go through one vector too, padded with −∞ (whose exp is exactly 0):
    // short rows (HANS attention, T ≈ 25) would otherwise spend most of their time in scalar tails.
    var tv = Vec16(repeating: -.infinity)
    for j in 0..<tail { tv[j] = p[body + j] }
    var mv = tv
    var i = 0
    while i < body {
        let v = raw.loadUnaligned(fromByteOffset: i * 4, as: Vec16.self)
        mv = mv.replacing(with: v, where: v .> mv)
        i += 16
    }
    let m = horizontalMax(mv)
    var sv = Vec16()
    i = 0
    while i < body {
        let e = exp16(raw.loadUnaligned(fromByteOffset: i * 4, as: Vec16.self) - m)
        raw.storeBytes(of: e, toByteOffset: i * 4, as: Vec16.self)
        sv += e
        i += 16
    }
    let te = exp16(tv - m)
    sv += te
    let inv = 1 / sv.sum()
    i = 0
    while i < body {
        raw.storeBytes(
            of: raw.loadUnaligned(fromByteOffset: i * 4, as: Vec16.self) * inv, toByteOffset: i * 4, as: Vec16.self)
        i += 16
    }
    let ts = te * inv
    for j in 0..<tail { p[body + j] = ts[j] }
}

/// Naive twin of `attentionBackward` for one sequence of length t (rows 0..<t, row stride ldqkv = 3·heads·d,
/// dctx row stride heads·d), in Double, recomputing P from Q and K. `drop`: probability-dropout multipliers
/// [heads, t, t] (ctx = (P ⊙ drop) V), nil for none.
public func attentionBackwardReference(
    qkv: [Float], dctx: [Float], t: Int, heads: Int, headDim d: Int, drop: [Float]? = nil
) -> [Float] {
    let ld = 3 * heads * d
    let scale = 1 / Double(d).squareRoot()
    var out = [Float](repeating: 0, count: t * ld)
    for h in 0..<heads {
        func q(_ i: Int, _ c: Int) -> Double { Double(qkv[i * ld + h * d + c]) }
        func k(_ i: Int, _ c: Int) -> Double { Double(qkv[i * ld + (heads + h) * d + c]) }
        func v(_ i: Int, _ c: Int) -> Double { Double(qkv[i * ld + (2 * heads + h) * d + c]) }
        func g(_ i: Int, _ c: Int) -> Double { Double(dctx[i * heads * d + h * d + c]) }
        var P = [[Double]](repeating: [Double](repeating: 0, count: t), count: t)
        for i in 0..<t {
            let sc = (0..<t).map { j in (0..<d).reduce(0.0) { $0 + q(i, $1) * k(j, $1) } * scale }
            let m = sc.max()!
            let e = sc.map { exp($0 - m) }
            let z = e.reduce(0, +)
            P[i] = e.map { $0 / z }
        }
        func m(_ i: Int, _ j: Int) -> Double { drop.map { Double($0[(h * t + i) * t + j]) } ?? 1 }
        var dS = P
        for i in 0..<t {
            let dP = (0..<t).map { j in (0..<d).reduce(0.0) { $0 + g(i, $1) * v(j, $1) } * m(i, j) }
            let rowDot = (0..<t).reduce(0.0) { $0 + dP[$1] * P[i][$1] }
            for j in 0..<t { dS[i][j] = P[i][j] * (dP[j] - rowDot) * scale }
        }
        for i in 0..<t {
            for c in 0..<d {
                out[i * ld + h * d + c] = Float((0..<t).reduce(0.0) { $0 + dS[i][$1] * k($1, c) })
                out[i * ld + (heads + h) * d + c] = Float((0..<t).reduce(0.0) { $0 + dS[$1][i] * q($1, c) })
                out[i * ld + (2 * heads + h) * d + c] = Float(
                    (0..<t).reduce(0.0) { $0 + P[$1][i] * m($1, i) * g($1, c) })
            }
        }
    }
    return out
}

/// Naive twin of `layerNormBackward` and `layerNormParameterGradients`, in Double through the explicit
/// Jacobian ∂y_i/∂x_k = γ_i · rstd · (δ_ik − 1/n − x̂_i x̂_k / n) with the statistics recomputed from x:
/// a different route to the same numbers. Returns dx [rows, count], dγ and dβ [count].
public func layerNormBackwardReference(dy: [Float], x: [Float], gamma: [Float], rows: Int, count n: Int, eps: Float)
    -> (dx: [Float], dGamma: [Float], dBeta: [Float])
{
    var dx = [Float](repeating: 0, count: rows * n)
    var dGamma = [Double](repeating: 0, count: n)
    var dBeta = [Double](repeating: 0, count: n)
    for r in 0..<rows {
        let row = (0..<n).map { Double(x[r * n + $0]) }
        let mean = row.reduce(0, +) / Double(n)
        let variance = row.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(n)
        let rstd = 1 / (variance + Double(eps)).squareRoot()
        let xh = row.map { ($0 - mean) * rstd }
        for k in 0..<n {
            var s = 0.0
            for i in 0..<n {
                let jacobian = Double(gamma[i]) * rstd * ((i == k ? 1 : 0) - 1 / Double(n) - xh[i] * xh[k] / Double(n))
                s += Double(dy[r * n + i]) * jacobian
            }
            dx[r * n + k] = Float(s)
            dGamma[k] += Double(dy[r * n + k]) * xh[k]
            dBeta[k] += Double(dy[r * n + k])
        }
    }
    return (dx, dGamma.map(Float.init), dBeta.map(Float.init))
}

/// Naive twin of `firstQueryAttention`, written from the definition: every token's key and value formed
/// (biases included), scores, softmax and the weighted sum, all in Double. `wk`, `wv` are [H·d, D] row-major.
public func firstQueryAttentionReference(
    x: [Float], features D: Int, offsets: [Int], queries q: [Float], heads: Int,
    headDim d: Int, keyWeight wk: [Float], keyBias bk: [Float],
    valueWeight wv: [Float], valueBias bv: [Float]
) -> [Float] {
    let B = offsets.count - 1
    let width = heads * d
    let scale = 1 / Double(d).squareRoot()
    var ctx = [Float](repeating: 0, count: B * width)
    for s in 0..<B {
        let rows = Array(offsets[s]..<offsets[s + 1])
        for h in 0..<heads {
            func project(_ w: [Float], _ bias: [Float], _ t: Int) -> [Double] {
                (0..<d).map { c in
                    var sum = Double(bias[h * d + c])
                    for i in 0..<D { sum += Double(w[(h * d + c) * D + i]) * Double(x[t * D + i]) }
                    return sum
                }
            }
            let keys = rows.map { project(wk, bk, $0) }
            let values = rows.map { project(wv, bv, $0) }
            let scores = keys.map { k in scale * (0..<d).reduce(0.0) { $0 + Double(q[s * width + h * d + $1]) * k[$1] }
            }
            let top = scores.max() ?? 0
            let e = scores.map { Foundation.exp($0 - top) }
            let total = e.reduce(0, +)
            for c in 0..<d {
                var sum = 0.0
                for (j, v) in values.enumerated() { sum += e[j] / total * v[c] }
                ctx[s * width + h * d + c] = Float(sum)
            }
        }
    }
    return ctx
}

/// Naive twin of `accumulateLinearGradients` (fresh gradients, double accumulation).
public func linearGradientsReference(dy: [Float], x: [Float], rows: Int, out: Int, inp: Int) -> (
    dW: [Float], db: [Float]
) {
    var dW = [Float](repeating: 0, count: out * inp)
    var db = [Float](repeating: 0, count: out)
    for o in 0..<out {
        var s = 0.0
        for t in 0..<rows { s += Double(dy[t * out + o]) }
        db[o] = Float(s)
        for i in 0..<inp {
            var acc = 0.0
            for t in 0..<rows { acc += Double(dy[t * out + o]) * Double(x[t * inp + i]) }
            dW[o * inp + i] = Float(acc)
        }
    }
    return (dW, db)
}

/// `maskBackward`'s naive twin: one value at a time, the sum in one Double.
public func maskBackwardReference(
    dy: [Float], y: [Float], rows: Int, width: Int, stride: Int, z: Float, mean: [Float]?, dropout: [Float]?
) -> (dz: Double, out: [Float]) {
    var out = dy
    var g = 0.0
    for t in 0..<rows {
        for e in 0..<width {
            let i = t * stride + e
            g += Double(dy[i]) * Double(y[i] - (mean?[e] ?? 0))
            out[i] = dy[i] * z * (dropout?[i] ?? 1)
        }
    }
    return (g, out)
}
