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
/// accumulator in registers for d ∈ {16, 32, 48, 64}; other head sizes take a plain path. `slots`: as `attention`'s.
/// `firstQueryOnly`: dctx is zero except on each sequence's first row (a last layer whose [CLS] rows alone reach
/// the classifier), and probs holds only those rows (`attention(…, firstQueryOnly: true)`): the terms of the other
/// rows, all exact zeros, are not formed — dQ is zero past the first row, dV_j = P_0j dctx_0, dK_j = dS_0j Q_0.
/// Naive twin: `attentionBackwardReference`.
public func attentionBackward(
    qkv: UnsafePointer<Float>, ldqkv: Int, probs: UnsafePointer<Float>, dctx: UnsafePointer<Float>, ldctx: Int,
    heads: Int, headDim d: Int, offsets: [Int], dqkv: UnsafeMutablePointer<Float>,
    probDropout: DropoutBits? = nil, slots: ProbabilitySlots? = nil, firstQueryOnly: Bool = false,
    pool: ThreadPool = .shared
) {
    let slots = slots ?? .identity(heads)
    precondition(slots.slot.count == heads, "one probability slot per head")
    let probBase = attentionProbOffsets(offsets: offsets, heads: slots.perSequence)
    let qa = UInt(bitPattern: qkv)
    let pa = UInt(bitPattern: probs)
    let da = UInt(bitPattern: dctx)
    let ga = UInt(bitPattern: dqkv)
    pool.parallelFor(offsets.count - 1) { s in
        let start = offsets[s]
        let t = offsets[s + 1] - start
        var scratch = AttentionBackwardScratch(t: t, d: d)
        defer { scratch.deallocate() }
        for h in 0..<heads {
            let block = probBase[s] + slots.slot[h] * t * t
            let head = HeadBackward(
                P: UnsafePointer<Float>(bitPattern: pa)! + block,
                M: probDropout?.advanced(by: block),
                qkv: UnsafePointer<Float>(bitPattern: qa)! + start * ldqkv,
                dqkv: UnsafeMutablePointer(bitPattern: ga)!
                    + start * ldqkv,
                dc: UnsafePointer<Float>(bitPattern: da)! + start * ldctx + h * d, ldqkv: ldqkv, ldctx: ldctx,
                head: h, heads: heads, d: d, t: t)
            if firstQueryOnly {
                head.firstRow(scratch)
            } else {
                head.rows(scratch)
                head.columns(scratch)
            }
        }
    }
}

/// One sequence's scratch of the attention backward: dS [t, tPad] (a padded row each), P ⊙ M [t, t] (with
/// dropout), Pᵀ and dSᵀ [t, t], Vᵀ [d, tPad] (zero past t), one accumulator row.
struct AttentionBackwardScratch {
    let tPad: Int
    let dS, pM, pT, dST, vT, acc: UnsafeMutablePointer<Float>
    init(t: Int, d: Int) {
        tPad = (t + 15) / 16 * 16
        dS = .allocate(capacity: t * tPad)
        pM = .allocate(capacity: t * t)
        pT = .allocate(capacity: t * t)
        dST = .allocate(capacity: t * t)
        vT = .allocate(capacity: d * tPad)
        acc = .allocate(capacity: 2 * d)
        vT.update(repeating: 0, count: d * tPad)
    }
    mutating func deallocate() {
        for p in [dS, pM, pT, dST, vT, acc] { p.deallocate() }
    }
}

/// The backward of one (sequence, head): its probabilities P (dropout multipliers M), its q, k, v rows and their
/// gradients' places, the context gradient dc.
struct HeadBackward {
    let P: UnsafePointer<Float>
    let M: DropoutBits?
    let q, k, v, dc: UnsafePointer<Float>
    let dq, dk, dv: UnsafeMutablePointer<Float>
    let ldqkv, ldctx, d, t: Int
    let scale: Float
    let fast: Bool

    init(
        P: UnsafePointer<Float>, M: DropoutBits?, qkv: UnsafePointer<Float>, dqkv: UnsafeMutablePointer<Float>,
        dc: UnsafePointer<Float>, ldqkv: Int, ldctx: Int, head h: Int, heads: Int, d: Int, t: Int
    ) {
        (self.P, self.M, self.dc, self.ldqkv, self.ldctx, self.d, self.t) = (P, M, dc, ldqkv, ldctx, d, t)
        (q, k, v) = (qkv + h * d, qkv + (heads + h) * d, qkv + (2 * heads + h) * d)
        (dq, dk, dv) = (dqkv + h * d, dqkv + (heads + h) * d, dqkv + (2 * heads + h) * d)
        scale = 1 / Float(d).squareRoot()
        fast = d % 16 == 0 && d <= 64
    }

    /// Rows: dP_i = dctx_i Vᵀ; dS_ij = P_ij (dP_ij − Σ_j' dP_ij' P_ij') · scale; dQ_i = Σ_j dS_ij K_j. With dropout
    /// multipliers M on the probabilities (ctx = (P ⊙ M) V): dP ← dP ⊙ M before the softmax's backward, and dV
    /// reads P ⊙ M. The rows are written row-major and transposed for the column pass in 16-row blocks
    /// (`transposeRows`), where writing each value straight into its column touched a new cache line per value.
    func rows(_ s: AttentionBackwardScratch) {
        transposeRows(v, ld: ldqkv, rows: t, width: d, into: s.vT, ldT: s.tPad)
        if fast {
            // dP = dctx Vᵀ for every row at once, four rows per pass (the forward's score product).
            rowMajorProduct(m: t, n: s.tPad, k: d, a: dc, lda: ldctx, b: s.vT, ldb: s.tPad, out: s.dS, ldo: s.tPad)
        }
        for i in 0..<t {
            let row = s.dS + i * s.tPad
            if !fast { vectorTimesMatrix(dc + i * ldctx, s.vT, rows: d, cols: s.tPad, out: row) }
            softmaxBackwardRow(
                row, p: P + i * t, dropout: M?.advanced(by: i * t), pM: s.pM + i * t, count: t, scale: scale)
            if !fast {
                s.acc.update(repeating: 0, count: d)
                for j in 0..<t { axpy(row[j], k + j * ldqkv, s.acc, count: d) }
                (dq + i * ldqkv).update(from: s.acc, count: d)
            }
        }
        if fast {
            // dQ = dS K, four rows per pass.
            for i in stride(from: 0, to: t, by: 4) {
                weightedRowSum4(
                    s.dS + i * s.tPad, ldp: s.tPad, rows: min(4, t - i), k, ldv: ldqkv, t: t, d: d,
                    out: dq + i * ldqkv, ldout: ldqkv)
            }
        }
        if !fast {
            transposeRows(s.dS, ld: s.tPad, rows: t, width: t, into: s.dST, ldT: t)
            transposeRows(M == nil ? P : UnsafePointer(s.pM), ld: t, rows: t, width: t, into: s.pT, ldT: t)
        }
    }

    /// The whole backward when only the first row has a context gradient: dS_0 (as `rows` forms it), dQ_0 = dS_0 K,
    /// dQ_i = 0 past it, dV_j = (P_0j M_0j) dctx_0, dK_j = dS_0j Q_0.
    func firstRow(_ s: AttentionBackwardScratch) {
        transposeRows(v, ld: ldqkv, rows: t, width: d, into: s.vT, ldT: s.tPad)
        let row = s.dS
        if fast {
            rowMajorProduct(m: 1, n: s.tPad, k: d, a: dc, lda: ldctx, b: s.vT, ldb: s.tPad, out: row, ldo: s.tPad)
        } else {
            vectorTimesMatrix(dc, s.vT, rows: d, cols: s.tPad, out: row)
        }
        softmaxBackwardRow(row, p: P, dropout: M, pM: s.pM, count: t, scale: scale)
        s.acc.update(repeating: 0, count: d)
        for j in 0..<t { axpy(row[j], k + j * ldqkv, s.acc, count: d) }
        dq.update(from: s.acc, count: d)
        for i in 1..<max(1, t) { (dq + i * ldqkv).update(repeating: 0, count: d) }
        for j in 0..<t {
            let p = M == nil ? P[j] : s.pM[j]
            for c in 0..<d {
                dv[j * ldqkv + c] = p * dc[c]
                dk[j * ldqkv + c] = row[j] * q[c]
            }
        }
    }

    /// Columns: dV_j = Σ_i P_ij dctx_i; dK_j = Σ_i dS_ij Q_i. When fast, four j per pass reading columns j ..< j + 4
    /// of P (or P ⊙ M) and dS in place (their rows a stride apart, the 16 KB–64 KB blocks in cache from the rows
    /// pass); otherwise over the transposes the rows pass made.
    func columns(_ s: AttentionBackwardScratch) {
        if fast {
            let pm = M == nil ? P : UnsafePointer(s.pM)
            for j in stride(from: 0, to: t, by: 4) {
                let rows = min(4, t - j)
                weightedRowSum4(
                    pm + j, ldp: 1, step: t, rows: rows, dc, ldv: ldctx, t: t, d: d, out: dv + j * ldqkv,
                    ldout: ldqkv)
                weightedRowSum4(
                    s.dS + j, ldp: 1, step: s.tPad, rows: rows, q, ldv: ldqkv, t: t, d: d, out: dk + j * ldqkv,
                    ldout: ldqkv)
            }
            return
        }
        for j in 0..<t {
            s.acc.update(repeating: 0, count: 2 * d)
            for i in 0..<t {
                axpy(s.pT[j * t + i], dc + i * ldctx, s.acc, count: d)
                axpy(s.dST[j * t + i], q + i * ldqkv, s.acc + d, count: d)
            }
            (dv + j * ldqkv).update(from: s.acc, count: d)
            (dk + j * ldqkv).update(from: s.acc + d, count: d)
        }
    }
}

/// One row of the softmax's backward, in place: with dropout multipliers m (ctx = (P ⊙ M) V), dP ← dP ⊙ m
/// and pM ← p ⊙ m (what dV reads); then dS = p ⊙ (dP − Σ_j dP_j p_j) · scale. Sixteen lanes at a time, the
/// dot product in sixteen partial sums; the last count % 16 values one by one (a row of p is `count` long).
@inline(__always)
func softmaxBackwardRow(
    _ dP: UnsafeMutablePointer<Float>, p: UnsafePointer<Float>, dropout m: DropoutBits?,
    pM: UnsafeMutablePointer<Float>, count t: Int, scale: Float
) {
    let body = t & ~15
    let (dr, pr) = (UnsafeMutableRawPointer(dP), UnsafeRawPointer(p))
    var dots = Vec16()
    var j = 0
    while j < body {
        var g = dr.loadUnaligned(fromByteOffset: j * 4, as: Vec16.self)
        let pv = pr.loadUnaligned(fromByteOffset: j * 4, as: Vec16.self)
        if let m {
            let mv = m.multipliers16(j)
            g *= mv
            dr.storeBytes(of: g, toByteOffset: j * 4, as: Vec16.self)
            UnsafeMutableRawPointer(pM).storeBytes(of: pv * mv, toByteOffset: j * 4, as: Vec16.self)
        }
        dots.addProduct(g, pv)
        j += 16
    }
    var dot = dots.sum()
    for j in body..<t {
        if let m {
            dP[j] *= m.multiplier(j)
            pM[j] = p[j] * m.multiplier(j)
        }
        dot += dP[j] * p[j]
    }
    j = 0
    while j < body {
        let g = dr.loadUnaligned(fromByteOffset: j * 4, as: Vec16.self)
        let pv = pr.loadUnaligned(fromByteOffset: j * 4, as: Vec16.self)
        dr.storeBytes(of: pv * (g - dot) * scale, toByteOffset: j * 4, as: Vec16.self)
        j += 16
    }
    for j in body..<t { dP[j] = p[j] * (dP[j] - dot) * scale }
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
