// Backward passes of the kernels: LayerNorm given the statistics its forward recorded (`layerNorm(…, statistics:)`),
// attention given its stored probabilities, and their naive twins.
import Foundation

/// dx = rstd · (dx̂ − mean(dx̂) − x̂ · mean(dx̂ ⊙ x̂)) with dx̂ = dy ⊙ γ and x̂ = (x − mean) · rstd.
/// `dx` is overwritten (it may alias `dy`).
public func layerNormBackward(
    _ dy: UnsafePointer<Float>, x: UnsafePointer<Float>, mean: UnsafePointer<Float>,
    rstd: UnsafePointer<Float>, gamma: UnsafePointer<Float>, rows: Int, count: Int,
    dx: UnsafeMutablePointer<Float>, pool: ThreadPool = .shared
) {
    let dya = UInt(bitPattern: dy)
    let xa = UInt(bitPattern: x)
    let ma = UInt(bitPattern: mean)
    let ra = UInt(bitPattern: rstd)
    let ga = UInt(bitPattern: gamma)
    let dxa = UInt(bitPattern: dx)
    pool.parallelFor(rows) { r in
        let dy = UnsafePointer<Float>(bitPattern: dya)! + r * count
        let x = UnsafePointer<Float>(bitPattern: xa)! + r * count
        let g = UnsafePointer<Float>(bitPattern: ga)!
        let dx = UnsafeMutablePointer<Float>(bitPattern: dxa)! + r * count
        let mu = UnsafePointer<Float>(bitPattern: ma)![r]
        let rs = UnsafePointer<Float>(bitPattern: ra)![r]
        var sumD = 0.0
        var sumDX = 0.0
        for i in 0..<count {
            let dxh = Double(dy[i] * g[i])
            let xh = Double((x[i] - mu) * rs)
            sumD += dxh
            sumDX += dxh * xh
        }
        let n = Double(count)
        for i in 0..<count {
            let dxh = Double(dy[i] * g[i])
            let xh = Double((x[i] - mu) * rs)
            dx[i] = Float(Double(rs) * (dxh - sumD / n - xh * sumDX / n))
        }
    }
}

/// Attention backward for one layer, given the forward's probabilities (`attention(…, probs:)`):
///   ctx = P V  →  dP = dctx Vᵀ, dV = Pᵀ dctx
///   P = softmax(S) → dS = P ⊙ (dP − rowsum(dP ⊙ P));  S = scale · Q Kᵀ → dQ = scale · dS K, dK = scale · dSᵀ Q
/// `dqkv` ([N, 3·heads·d], same layout as qkv) is overwritten. Per (sequence, head): a row pass (dP row as a
/// vector–matrix product with Vᵀ, dS row, dQ_i) then a column pass over Pᵀ and dSᵀ (dV_j, dK_j), every
/// accumulator in registers for d ∈ {16, 32, 48, 64}; other head sizes take a plain path.
/// Naive twin: `attentionBackwardReference`.
public func attentionBackward(
    qkv: UnsafePointer<Float>, ldqkv: Int, probs: UnsafePointer<Float>, dctx: UnsafePointer<Float>, ldctx: Int,
    heads: Int, headDim d: Int, offsets: [Int], dqkv: UnsafeMutablePointer<Float>,
    probDropout: UnsafePointer<Float>? = nil, pool: ThreadPool = .shared
) {
    let probBase = attentionProbOffsets(offsets: offsets, heads: heads)
    let scale = 1 / Float(d).squareRoot()
    let fast = d % 16 == 0 && d <= 64
    let qa = UInt(bitPattern: qkv)
    let pa = UInt(bitPattern: probs)
    let da = UInt(bitPattern: dctx)
    let ga = UInt(bitPattern: dqkv)
    let ma = probDropout.map { UInt(bitPattern: $0) }
    pool.parallelFor(offsets.count - 1) { s in
        let drop = ma.map { UnsafePointer<Float>(bitPattern: $0)! }
        let qkv = UnsafePointer<Float>(bitPattern: qa)!
        let probs = UnsafePointer<Float>(bitPattern: pa)!
        let dctx = UnsafePointer<Float>(bitPattern: da)!
        let dqkv = UnsafeMutablePointer<Float>(bitPattern: ga)!
        let start = offsets[s]
        let t = offsets[s + 1] - start
        let tPad = (t + 15) / 16 * 16
        // Scratch: dS [t, tPad] (a padded row each), Pᵀ and dSᵀ [t, t], Vᵀ [d, tPad], one accumulator row.
        let dS = UnsafeMutablePointer<Float>.allocate(capacity: t * tPad)
        let pT = UnsafeMutablePointer<Float>.allocate(capacity: t * t)
        let dST = UnsafeMutablePointer<Float>.allocate(capacity: t * t)
        let vT = UnsafeMutablePointer<Float>.allocate(capacity: d * tPad)
        let acc = UnsafeMutablePointer<Float>.allocate(capacity: 2 * d)
        defer {
            dS.deallocate()
            pT.deallocate()
            dST.deallocate()
            vT.deallocate()
            acc.deallocate()
        }
        vT.update(repeating: 0, count: d * tPad)
        for h in 0..<heads {
            let P = probs + probBase[s] + h * t * t
            let M = drop.map { $0 + probBase[s] + h * t * t }
            let q = qkv + start * ldqkv + h * d
            let k = qkv + start * ldqkv + (heads + h) * d
            let v = qkv + start * ldqkv + (2 * heads + h) * d
            let dq = dqkv + start * ldqkv + h * d
            let dk = dqkv + start * ldqkv + (heads + h) * d
            let dv = dqkv + start * ldqkv + (2 * heads + h) * d
            let dc = dctx + start * ldctx + h * d
            for j in 0..<t { for c in 0..<d { vT[c * tPad + j] = v[j * ldqkv + c] } }
            // Rows: dP_i = dctx_i Vᵀ; dS_ij = P_ij (dP_ij − Σ_j' dP_ij' P_ij') · scale; dQ_i = Σ_j dS_ij K_j.
            // With dropout multipliers M on the probabilities (ctx = (P ⊙ M) V): dP ← dP ⊙ M before the
            // softmax's backward, and dV reads P ⊙ M.
            for i in 0..<t {
                let row = dS + i * tPad
                let pRow = P + i * t
                let dci = dc + i * ldctx
                vectorTimesMatrix(dci, vT, rows: d, cols: tPad, out: row)
                if let M { for j in 0..<t { row[j] *= M[i * t + j] } }
                var rowDot: Float = 0
                for j in 0..<t { rowDot += row[j] * pRow[j] }
                for j in 0..<t {
                    let x = pRow[j] * (row[j] - rowDot) * scale
                    row[j] = x
                    dST[j * t + i] = x
                    pT[j * t + i] = M.map { pRow[j] * $0[i * t + j] } ?? pRow[j]
                }
                if fast {
                    weightedRowSum(row, k, ldv: ldqkv, t: t, d: d, out: dq + i * ldqkv)
                } else {
                    acc.update(repeating: 0, count: d)
                    for j in 0..<t { axpy(row[j], k + j * ldqkv, acc, count: d) }
                    (dq + i * ldqkv).update(from: acc, count: d)
                }
            }
            // Columns: dV_j = Σ_i P_ij dctx_i; dK_j = Σ_i dS_ij Q_i.
            for j in 0..<t {
                if fast {
                    weightedRowSum(pT + j * t, dc, ldv: ldctx, t: t, d: d, out: dv + j * ldqkv)
                    weightedRowSum(dST + j * t, q, ldv: ldqkv, t: t, d: d, out: dk + j * ldqkv)
                } else {
                    acc.update(repeating: 0, count: 2 * d)
                    for i in 0..<t {
                        axpy(pT[j * t + i], dc + i * ldctx, acc, count: d)
                        axpy(dST[j * t + i], q + i * ldqkv, acc + d, count: d)
                    }
                    (dv + j * ldqkv).update(from: acc, count: d)
                    (dk + j * ldqkv).update(from: acc + d, count: d)
                }
            }
        }
    }
}

/// out[0..<cols] = Σ_r x[r] · m[r·cols ..< (r+1)·cols], cols a multiple of 16; 64 columns at a time in registers.
@inline(__always)
func vectorTimesMatrix(
    _ x: UnsafePointer<Float>, _ m: UnsafePointer<Float>, rows: Int, cols: Int, out: UnsafeMutablePointer<Float>
) {
    let raw = UnsafeRawPointer(m)
    let o = UnsafeMutableRawPointer(out)
    var c0 = 0
    while c0 + 64 <= cols {
        var a0 = Vec16()
        var a1 = Vec16()
        var a2 = Vec16()
        var a3 = Vec16()
        for r in 0..<rows {
            let w = x[r]
            let base = (r * cols + c0) * 4
            a0.addProduct(w, raw.loadUnaligned(fromByteOffset: base, as: Vec16.self))
            a1.addProduct(w, raw.loadUnaligned(fromByteOffset: base + 64, as: Vec16.self))
            a2.addProduct(w, raw.loadUnaligned(fromByteOffset: base + 128, as: Vec16.self))
            a3.addProduct(w, raw.loadUnaligned(fromByteOffset: base + 192, as: Vec16.self))
        }
        o.storeBytes(of: a0, toByteOffset: c0 * 4, as: Vec16.self)
        o.storeBytes(of: a1, toByteOffset: c0 * 4 + 64, as: Vec16.self)
        o.storeBytes(of: a2, toByteOffset: c0 * 4 + 128, as: Vec16.self)
        o.storeBytes(of: a3, toByteOffset: c0 * 4 + 192, as: Vec16.self)
        c0 += 64
    }
    while c0 < cols {
        var a = Vec16()
        for r in 0..<rows { a.addProduct(x[r], raw.loadUnaligned(fromByteOffset: (r * cols + c0) * 4, as: Vec16.self)) }
        o.storeBytes(of: a, toByteOffset: c0 * 4, as: Vec16.self)
        c0 += 16
    }
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

/// dγ += Σ_t dy ⊙ x̂ and dβ += Σ_t dy, x̂ = (x − mean)·rstd: LayerNorm's parameter gradients.
public func layerNormParameterGradients(
    _ dy: UnsafePointer<Float>, x: UnsafePointer<Float>, mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>,
    rows: Int, count: Int, dGamma: UnsafeMutablePointer<Float>, dBeta: UnsafeMutablePointer<Float>
) {
    for t in 0..<rows {
        let mu = mean[t]
        let rs = rstd[t]
        for j in 0..<count {
            let g = dy[t * count + j]
            dGamma[j] += g * (x[t * count + j] - mu) * rs
            dBeta[j] += g
        }
    }
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
