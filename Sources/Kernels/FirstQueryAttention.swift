import Foundation

// Attention for one query per sequence — a classifier's [CLS] row in the last layer — reassociated so that
// the other tokens' keys and values are never formed.
//
// For head h with query q_h [d], key weights W_K,h [d, D] (rows h·d ..< (h+1)·d of W_K) and bias b_K,h,
// value weights W_V,h and bias b_V,h, and the layer's input rows x_t [D] of one sequence:
//
//   score_t = scale · q_h·(W_K,h x_t + b_K,h) = scale · u_h·x_t + scale · q_h·b_K,h,   u_h = W_K,hᵀ q_h  [D]
//
// The last term is the same for every t and a softmax ignores a constant shift, so p = softmax_t(scale·u_h·x_t);
// and as Σ_t p_t = 1,
//
//   ctx_h = Σ_t p_t (W_V,h x_t + b_V,h) = W_V,h r_h + b_V,h,   r_h = Σ_t p_t x_t  [D]
//
// Per sequence that is 2·H·d·D + 2·H·T·D multiply-adds (u, r, the scores, ctx) instead of 2·T·H·d·D for the
// keys and values alone: ~20× fewer at bert-base's T = 128. The values agree with the key/value path to
// rounding (products summed in another order; the constant score term dropped rather than cancelled by the
// softmax), which the tests bound against a Double reference that forms keys and values explicitly.
//
// Layouts: x [N, D] (row stride ldx, sequences concatenated as in `attention`); q [B, H·d] (the [CLS] rows'
// queries, bias included); W_K [H·d, D] row-major as in the checkpoint; W_Vᵀ [D, H·d] (transposed once, so
// ctx is a row-major product like the others); ctx [B, H·d] (row stride ldctx), head-major like `attention`.

/// ctx[s] = attention of query q[s] over the rows of sequence s, per head, without forming keys or values
/// (see the comment at the top of this file). Each output is computed by one task in a fixed order, so the
/// result does not depend on the thread count.
public func firstQueryAttention(
    x: UnsafePointer<Float>, ldx: Int, features D: Int, offsets: [Int],
    queries q: UnsafePointer<Float>, heads: Int, headDim d: Int,
    keyWeight wk: UnsafePointer<Float>, valueWeightT wvT: UnsafePointer<Float>,
    valueBias bv: UnsafePointer<Float>?,
    ctx: UnsafeMutablePointer<Float>, ldctx: Int, pool: ThreadPool = .shared
) {
    let B = offsets.count - 1
    if B <= 0 || heads == 0 { return }
    let width = heads * d
    let scale = 1 / Float(d).squareRoot()
    let u = allocateFloats(B * heads * D)  // [B, H, D]: u_h = W_K,hᵀ q_h per sequence
    let r = allocateFloats(B * heads * D)  // [B, H, D]: r_h = Σ_t p_t x_t per sequence
    defer {
        u.deallocate()
        r.deallocate()
    }
    let (xa, qa, ua, ra) = (UInt(bitPattern: x), UInt(bitPattern: q), UInt(bitPattern: u), UInt(bitPattern: r))
    let (wka, wva, ca) = (UInt(bitPattern: wk), UInt(bitPattern: wvT), UInt(bitPattern: ctx))
    // u[s, h, :] = Σ_c q[s, h·d + c] · W_K[h·d + c, :]   — per head: [B, d] · [d, D]
    pool.parallelFor(heads) { h in
        rowMajorProduct(
            m: B, n: D, k: d, a: UnsafePointer(bitPattern: qa)! + h * d, lda: width,
            b: UnsafePointer(bitPattern: wka)! + h * d * D, ldb: D,
            out: UnsafeMutablePointer(bitPattern: ua)! + h * D, ldo: heads * D)
    }
    // Per sequence: scores [H, T] = scale · u_s · X_sᵀ, softmax per head, r_s [H, D] = P · X_s.
    pool.parallelFor(B) { s in
        let start = offsets[s]
        let t = offsets[s + 1] - start
        let rs = UnsafeMutablePointer<Float>(bitPattern: ra)! + s * heads * D
        if t == 0 {
            rs.update(repeating: 0, count: heads * D)
            return
        }
        let xs = UnsafePointer<Float>(bitPattern: xa)! + start * ldx
        let tPad = (t + 15) & ~15
        let scores = allocateFloats(heads * tPad)  // [H, tPad], softmaxRows' padded layout
        defer { scores.deallocate() }
        rowDotProducts(
            m: heads, n: t, k: D, a: UnsafePointer(bitPattern: ua)! + s * heads * D, lda: D,
            b: xs, ldb: ldx, scale: scale, out: scores, ldo: tPad)
        var h = 0
        while h < heads {
            softmaxRows(scores + h * tPad, ld: tPad, rows: min(4, heads - h), count: t)
            h += 4
        }
        rowMajorProduct(m: heads, n: D, k: t, a: scores, lda: tPad, b: xs, ldb: ldx, out: rs, ldo: D)
    }
    // ctx[s, h·d ..< (h+1)·d] = r[s, h, :] · W_Vᵀ[:, h·d ..< (h+1)·d] + b_V,h   — per head: [B, D] · [D, d]
    pool.parallelFor(heads) { h in
        let out = UnsafeMutablePointer<Float>(bitPattern: ca)! + h * d
        rowMajorProduct(
            m: B, n: d, k: D, a: UnsafePointer(bitPattern: ra)! + h * D, lda: heads * D,
            b: UnsafePointer(bitPattern: wva)! + h * d, ldb: width, out: out, ldo: ldctx)
        if let bv {
            for s in 0..<B { for c in 0..<d { out[s * ldctx + c] += bv[h * d + c] } }
        }
    }
}

/// out[i·ldo + j] = scale · Σ_k a[i·lda + k] · b[k·ldb + j] for i < m, j < n: a small product of row-major
/// matrices — here u, r and ctx, and in `attention` the scores Q·Kᵀ (B = Kᵀ). Rows four at a time; columns 64
/// at a time (then 32, 16, one), so each loaded B vector serves four rows: 16 FMAs per 4 loads and 4 broadcasts.
/// Every output is summed over k in ascending order and multiplied by `scale` once (× 1 is exact).
@inline(__always)
func rowMajorProduct(
    m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
    scale: Float = 1, out: UnsafeMutablePointer<Float>, ldo: Int
) {
    let braw = UnsafeRawPointer(b)
    var i = 0
    while i < m {
        let p = FourRows(a: a + i * lda, lda: lda, rows: min(4, m - i), out: out + i * ldo, ldo: ldo, scale: scale)
        var j = 0
        while j + 64 <= n {
            p.columns64(braw, ldb: ldb, k: k, j)
            j += 64
        }
        while j + 32 <= n {
            p.columns32(braw, ldb: ldb, k: k, j)
            j += 32
        }
        while j + 16 <= n {
            p.columns16(braw, ldb: ldb, k: k, j)
            j += 16
        }
        while j < n {
            for r in 0..<p.rows {
                var sum: Float = 0
                for kk in 0..<k { sum = sum.addingProduct(a[(i + r) * lda + kk], b[kk * ldb + j]) }
                out[(i + r) * ldo + j] = sum * scale
            }
            j += 1
        }
        i += 4
    }
}

/// Up to four rows of A in one pass of `rowMajorProduct`, with where their sums go. Rows past `rows` repeat the last
/// real row; their sums are not stored.
struct FourRows {
    let a0, a1, a2, a3: UnsafePointer<Float>
    let rows: Int
    let out: UnsafeMutableRawPointer
    let ldo: Int
    let scale: Float

    @inline(__always)
    init(a: UnsafePointer<Float>, lda: Int, rows: Int, out: UnsafeMutablePointer<Float>, ldo: Int, scale: Float) {
        a0 = a
        a1 = a + min(1, rows - 1) * lda
        a2 = a + min(2, rows - 1) * lda
        a3 = a + min(3, rows - 1) * lda
        (self.rows, self.out, self.ldo, self.scale) = (rows, UnsafeMutableRawPointer(out), ldo, scale)
    }

    @inline(__always)
    func store(_ r: Int, _ j: Int, _ v: Vec16) {
        if r < rows { (out + (r * ldo + j) * 4).storeBytes(of: v * scale, as: Vec16.self) }
    }

    /// Columns j ..< j + 64: 16 accumulators, four per row.
    @inline(__always)
    func columns64(_ braw: UnsafeRawPointer, ldb: Int, k: Int, _ j: Int) {
        var c0 = (Vec16(), Vec16(), Vec16(), Vec16())
        var c1 = c0
        var c2 = c0
        var c3 = c0
        for kk in 0..<k {
            let row = braw + (kk * ldb + j) * 4
            let b0 = row.loadUnaligned(as: Vec16.self)
            let b1 = row.loadUnaligned(fromByteOffset: 64, as: Vec16.self)
            let b2 = row.loadUnaligned(fromByteOffset: 128, as: Vec16.self)
            let b3 = row.loadUnaligned(fromByteOffset: 192, as: Vec16.self)
            FourRows.add(&c0, a0[kk], b0, b1, b2, b3)
            FourRows.add(&c1, a1[kk], b0, b1, b2, b3)
            FourRows.add(&c2, a2[kk], b0, b1, b2, b3)
            FourRows.add(&c3, a3[kk], b0, b1, b2, b3)
        }
        store(0, j, c0)
        store(1, j, c1)
        store(2, j, c2)
        store(3, j, c3)
    }

    @inline(__always)
    func store(_ r: Int, _ j: Int, _ c: (Vec16, Vec16, Vec16, Vec16)) {
        store(r, j, c.0)
        store(r, j + 16, c.1)
        store(r, j + 32, c.2)
        store(r, j + 48, c.3)
    }

    @inline(__always)
    static func add(
        _ c: inout (Vec16, Vec16, Vec16, Vec16), _ w: Float, _ b0: Vec16, _ b1: Vec16, _ b2: Vec16, _ b3: Vec16
    ) {
        c.0.addProduct(w, b0)
        c.1.addProduct(w, b1)
        c.2.addProduct(w, b2)
        c.3.addProduct(w, b3)
    }

    /// Columns j ..< j + 32: 8 accumulators, two per row.
    @inline(__always)
    func columns32(_ braw: UnsafeRawPointer, ldb: Int, k: Int, _ j: Int) {
        var c0 = (Vec16(), Vec16())
        var c1 = c0
        var c2 = c0
        var c3 = c0
        for kk in 0..<k {
            let row = braw + (kk * ldb + j) * 4
            let b0 = row.loadUnaligned(as: Vec16.self)
            let b1 = row.loadUnaligned(fromByteOffset: 64, as: Vec16.self)
            var w = a0[kk]
            c0.0.addProduct(w, b0)
            c0.1.addProduct(w, b1)
            w = a1[kk]
            c1.0.addProduct(w, b0)
            c1.1.addProduct(w, b1)
            w = a2[kk]
            c2.0.addProduct(w, b0)
            c2.1.addProduct(w, b1)
            w = a3[kk]
            c3.0.addProduct(w, b0)
            c3.1.addProduct(w, b1)
        }
        store(0, j, c0)
        store(1, j, c1)
        store(2, j, c2)
        store(3, j, c3)
    }

    @inline(__always)
    func store(_ r: Int, _ j: Int, _ c: (Vec16, Vec16)) {
        store(r, j, c.0)
        store(r, j + 16, c.1)
    }

    /// Columns j ..< j + 16: one accumulator per row.
    @inline(__always)
    func columns16(_ braw: UnsafeRawPointer, ldb: Int, k: Int, _ j: Int) {
        var c = (Vec16(), Vec16(), Vec16(), Vec16())
        for kk in 0..<k {
            let bv = (braw + (kk * ldb + j) * 4).loadUnaligned(as: Vec16.self)
            c.0.addProduct(a0[kk], bv)
            c.1.addProduct(a1[kk], bv)
            c.2.addProduct(a2[kk], bv)
            c.3.addProduct(a3[kk], bv)
        }
        store(0, j, c.0)
        store(1, j, c.1)
        store(2, j, c.2)
        store(3, j, c.3)
    }
}

/// out[i·ldo + j] = scale · Σ_k a[i·lda + k] · b[j·ldb + k] for i < m, j < n: dot products of rows (the
/// scores u_h·x_t). Four rows of A against two of B per pass, 8 vector accumulators over k in steps of 16,
/// each reduced once at the end; k's last k mod 16 terms are added in order after the reduction.
@inline(__always)
func rowDotProducts(
    m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
    scale: Float, out: UnsafeMutablePointer<Float>, ldo: Int
) {
    let araw = UnsafeRawPointer(a)
    let braw = UnsafeRawPointer(b)
    let body = k & ~15
    var i = 0
    while i < m {
        let rows = min(4, m - i)
        let r0 = i
        let r1 = i + min(1, rows - 1)
        let r2 = i + min(2, rows - 1)
        let r3 = i + min(3, rows - 1)
        var j = 0
        while j < n {
            let cols = min(2, n - j)
            let j0 = j
            let j1 = j + cols - 1
            var s00 = Vec16()
            var s01 = Vec16()
            var s10 = Vec16()
            var s11 = Vec16()
            var s20 = Vec16()
            var s21 = Vec16()
            var s30 = Vec16()
            var s31 = Vec16()
            var kk = 0
            while kk < body {
                let x0 = (braw + (j0 * ldb + kk) * 4).loadUnaligned(as: Vec16.self)
                let x1 = (braw + (j1 * ldb + kk) * 4).loadUnaligned(as: Vec16.self)
                var w = (araw + (r0 * lda + kk) * 4).loadUnaligned(as: Vec16.self)
                s00.addProduct(w, x0)
                s01.addProduct(w, x1)
                w = (araw + (r1 * lda + kk) * 4).loadUnaligned(as: Vec16.self)
                s10.addProduct(w, x0)
                s11.addProduct(w, x1)
                w = (araw + (r2 * lda + kk) * 4).loadUnaligned(as: Vec16.self)
                s20.addProduct(w, x0)
                s21.addProduct(w, x1)
                w = (araw + (r3 * lda + kk) * 4).loadUnaligned(as: Vec16.self)
                s30.addProduct(w, x0)
                s31.addProduct(w, x1)
                kk += 16
            }
            @inline(__always) func finish(_ row: Int, _ col: Int, _ v: Vec16) {
                var total = v.sum()
                for kt in body..<k { total += a[row * lda + kt] * b[col * ldb + kt] }
                out[row * ldo + col] = scale * total
            }
            finish(r0, j0, s00)
            if cols > 1 { finish(r0, j1, s01) }
            if rows > 1 {
                finish(r1, j0, s10)
                if cols > 1 { finish(r1, j1, s11) }
            }
            if rows > 2 {
                finish(r2, j0, s20)
                if cols > 1 { finish(r2, j1, s21) }
            }
            if rows > 3 {
                finish(r3, j0, s30)
                if cols > 1 { finish(r3, j1, s31) }
            }
            j += 2
        }
        i += 4
    }
}
