// Backward passes of the kernels the mask gradients need (pruning, importance): LayerNorm with the
// statistics its backward uses, attention given its stored probabilities, and their naive twins.

/// LayerNorm forward over rows that also records each row's mean and 1/std (for `layerNormBackward`).
public func layerNormForward(_ x: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, rows: Int, count: Int,
                             gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>, eps: Float,
                             mean: UnsafeMutablePointer<Float>, rstd: UnsafeMutablePointer<Float>) {
    for r in 0..<rows {
        let row = x + r * count
        var s: Float = 0
        for i in 0..<count { s += row[i] }
        mean[r] = s / Float(count)
        rstd[r] = layerNormRow(row, out + r * count, count: count, gamma: gamma, beta: beta, eps: eps)
    }
}

/// dx = rstd · (dx̂ − mean(dx̂) − x̂ · mean(dx̂ ⊙ x̂)) with dx̂ = dy ⊙ γ and x̂ = (x − mean) · rstd.
/// `dx` is overwritten (it may alias `dy`).
public func layerNormBackward(_ dy: UnsafePointer<Float>, x: UnsafePointer<Float>, mean: UnsafePointer<Float>,
                              rstd: UnsafePointer<Float>, gamma: UnsafePointer<Float>, rows: Int, count: Int,
                              dx: UnsafeMutablePointer<Float>, pool: ThreadPool = .shared) {
    let dya = UInt(bitPattern: dy), xa = UInt(bitPattern: x), ma = UInt(bitPattern: mean), ra = UInt(bitPattern: rstd)
    let ga = UInt(bitPattern: gamma), dxa = UInt(bitPattern: dx)
    pool.parallelFor(rows) { r in
        let dy = UnsafePointer<Float>(bitPattern: dya)! + r * count, x = UnsafePointer<Float>(bitPattern: xa)! + r * count
        let g = UnsafePointer<Float>(bitPattern: ga)!, dx = UnsafeMutablePointer<Float>(bitPattern: dxa)! + r * count
        let mu = UnsafePointer<Float>(bitPattern: ma)![r], rs = UnsafePointer<Float>(bitPattern: ra)![r]
        var sumD = 0.0, sumDX = 0.0
        for i in 0..<count {
            let dxh = Double(dy[i] * g[i]), xh = Double((x[i] - mu) * rs)
            sumD += dxh
            sumDX += dxh * xh
        }
        let n = Double(count)
        for i in 0..<count {
            let dxh = Double(dy[i] * g[i]), xh = Double((x[i] - mu) * rs)
            dx[i] = Float(Double(rs) * (dxh - sumD / n - xh * sumDX / n))
        }
    }
}

/// Attention backward for one layer, given the forward's probabilities (`attention(…, probs:)`):
///   ctx = P V  →  dP = dctx Vᵀ, dV = Pᵀ dctx
///   P = softmax(S) → dS = P ⊙ (dP − rowsum(dP ⊙ P));  S = scale · Q Kᵀ → dQ = scale · dS K, dK = scale · dSᵀ Q
/// `dqkv` ([N, 3·heads·d], same layout as qkv) is overwritten.
public func attentionBackward(qkv: UnsafePointer<Float>, ldqkv: Int, probs: UnsafePointer<Float>, dctx: UnsafePointer<Float>, ldctx: Int,
                              heads: Int, headDim d: Int, offsets: [Int], dqkv: UnsafeMutablePointer<Float>,
                              pool: ThreadPool = .shared) {
    let probBase = attentionProbOffsets(offsets: offsets, heads: heads)
    let scale = 1 / Float(d).squareRoot()
    let qa = UInt(bitPattern: qkv), pa = UInt(bitPattern: probs), da = UInt(bitPattern: dctx), ga = UInt(bitPattern: dqkv)
    pool.parallelFor(offsets.count - 1) { s in
        let qkv = UnsafePointer<Float>(bitPattern: qa)!, probs = UnsafePointer<Float>(bitPattern: pa)!
        let dctx = UnsafePointer<Float>(bitPattern: da)!, dqkv = UnsafeMutablePointer<Float>(bitPattern: ga)!
        let start = offsets[s], t = offsets[s + 1] - start
        for i in 0..<t { for c in 0..<(3 * heads * d) { dqkv[(start + i) * ldqkv + c] = 0 } }
        var dP = [Float](repeating: 0, count: t)
        for h in 0..<heads {
            let P = probs + probBase[s] + h * t * t
            func q(_ i: Int) -> UnsafePointer<Float> { qkv + (start + i) * ldqkv + h * d }
            func k(_ j: Int) -> UnsafePointer<Float> { qkv + (start + j) * ldqkv + (heads + h) * d }
            func v(_ j: Int) -> UnsafePointer<Float> { qkv + (start + j) * ldqkv + (2 * heads + h) * d }
            for i in 0..<t {
                let dc = dctx + (start + i) * ldctx + h * d
                var dot: Float = 0
                for j in 0..<t {
                    var acc: Float = 0
                    let vj = v(j)
                    for c in 0..<d { acc += dc[c] * vj[c] }
                    dP[j] = acc
                    dot += acc * P[i * t + j]
                    // dV_j += P_ij · dctx_i
                    axpy(P[i * t + j], dc, dqkv + (start + j) * ldqkv + (2 * heads + h) * d, count: d)
                }
                for j in 0..<t {
                    let ds = P[i * t + j] * (dP[j] - dot) * scale
                    if ds == 0 { continue }
                    axpy(ds, k(j), dqkv + (start + i) * ldqkv + h * d, count: d)            // dQ_i += dS_ij K_j
                    axpy(ds, q(i), dqkv + (start + j) * ldqkv + (heads + h) * d, count: d)  // dK_j += dS_ij Q_i
                }
            }
        }
    }
}
