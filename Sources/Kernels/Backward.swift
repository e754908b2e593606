// Backward passes of the kernels the mask gradients need (pruning, importance): LayerNorm with the
// statistics its backward uses, attention given its stored probabilities, and their naive twins.
import Foundation


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
/// `dqkv` ([N, 3·heads·d], same layout as qkv) is overwritten. Per (sequence, head), two passes keep every
/// accumulator in a row that is written once: by rows i (dP, dS into a [T, T] scratch, dQ_i), then by
/// columns j (dV_j and dK_j). Naive twin: `attentionBackwardReference`.
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
        let dS = UnsafeMutablePointer<Float>.allocate(capacity: t * t), acc = UnsafeMutablePointer<Float>.allocate(capacity: 2 * d)
        defer { dS.deallocate(); acc.deallocate() }
        for h in 0..<heads {
            let P = probs + probBase[s] + h * t * t
            let q = qkv + start * ldqkv + h * d, k = qkv + start * ldqkv + (heads + h) * d, v = qkv + start * ldqkv + (2 * heads + h) * d
            let dq = dqkv + start * ldqkv + h * d, dk = dqkv + start * ldqkv + (heads + h) * d, dv = dqkv + start * ldqkv + (2 * heads + h) * d
            let dc = dctx + start * ldctx + h * d
            // Rows: dP_ij = dctx_i · V_j; dS_ij = P_ij (dP_ij − Σ_j' dP_ij' P_ij') · scale; dQ_i = Σ_j dS_ij K_j.
            for i in 0..<t {
                let row = dS + i * t, pRow = P + i * t, dci = dc + i * ldctx
                var rowDot: Float = 0
                for j in 0..<t {
                    let x = dot(dci, v + j * ldqkv, count: d)
                    row[j] = x
                    rowDot += x * pRow[j]
                }
                for j in 0..<t { row[j] = pRow[j] * (row[j] - rowDot) * scale }
                acc.update(repeating: 0, count: d)
                for j in 0..<t { axpy(row[j], k + j * ldqkv, acc, count: d) }
                (dq + i * ldqkv).update(from: acc, count: d)
            }
            // Columns: dV_j = Σ_i P_ij dctx_i; dK_j = Σ_i dS_ij Q_i.
            for j in 0..<t {
                acc.update(repeating: 0, count: 2 * d)
                for i in 0..<t {
                    axpy(P[i * t + j], dc + i * ldctx, acc, count: d)
                    axpy(dS[i * t + j], q + i * ldqkv, acc + d, count: d)
                }
                (dv + j * ldqkv).update(from: acc, count: d)
                (dk + j * ldqkv).update(from: acc + d, count: d)
            }
        }
    }
}

/// x · y over `count` floats, 16 lanes at a time with two independent chains.
@inline(__always)
func dot(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, count: Int) -> Float {
    let xr = UnsafeRawPointer(x), yr = UnsafeRawPointer(y)
    var a0 = Vec16(repeating: 0), a1 = Vec16(repeating: 0)
    var i = 0
    while i + 32 <= count {
        a0.addProduct(xr.loadUnaligned(fromByteOffset: i * 4, as: Vec16.self), yr.loadUnaligned(fromByteOffset: i * 4, as: Vec16.self))
        a1.addProduct(xr.loadUnaligned(fromByteOffset: i * 4 + 64, as: Vec16.self), yr.loadUnaligned(fromByteOffset: i * 4 + 64, as: Vec16.self))
        i += 32
    }
    if i + 16 <= count {
        a0.addProduct(xr.loadUnaligned(fromByteOffset: i * 4, as: Vec16.self), yr.loadUnaligned(fromByteOffset: i * 4, as: Vec16.self))
        i += 16
    }
    var sum = (a0 + a1).sum()
    while i < count { sum += x[i] * y[i]; i += 1 }
    return sum
}

/// Naive twin of `attentionBackward` for one sequence of length t (rows 0..<t, row stride ldqkv = 3·heads·d,
/// dctx row stride heads·d), in Double, recomputing P from Q and K.
public func attentionBackwardReference(qkv: [Float], dctx: [Float], t: Int, heads: Int, headDim d: Int) -> [Float] {
    let ld = 3 * heads * d, scale = 1 / Double(d).squareRoot()
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
            let e = sc.map { exp($0 - m) }, z = e.reduce(0, +)
            P[i] = e.map { $0 / z }
        }
        var dS = P
        for i in 0..<t {
            let dP = (0..<t).map { j in (0..<d).reduce(0.0) { $0 + g(i, $1) * v(j, $1) } }
            let rowDot = (0..<t).reduce(0.0) { $0 + dP[$1] * P[i][$1] }
            for j in 0..<t { dS[i][j] = P[i][j] * (dP[j] - rowDot) * scale }
        }
        for i in 0..<t {
            for c in 0..<d {
                out[i * ld + h * d + c] = Float((0..<t).reduce(0.0) { $0 + dS[i][$1] * k($1, c) })
                out[i * ld + (heads + h) * d + c] = Float((0..<t).reduce(0.0) { $0 + dS[$1][i] * q($1, c) })
                out[i * ld + (2 * heads + h) * d + c] = Float((0..<t).reduce(0.0) { $0 + P[$1][i] * g($1, c) })
            }
        }
    }
    return out
}
