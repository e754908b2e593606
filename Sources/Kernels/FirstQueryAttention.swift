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
    let oraw = UnsafeMutableRawPointer(out)
    var i = 0
    while i < m {
        let rows = min(4, m - i)
        // Rows past `rows` repeat the last real row; their sums are not stored.
        let a0 = a + i * lda
        let a1 = a + (i + min(1, rows - 1)) * lda
        let a2 = a + (i + min(2, rows - 1)) * lda
        let a3 = a + (i + min(3, rows - 1)) * lda
        @inline(__always) func store(_ r: Int, _ j: Int, _ v: Vec16) {
            if r < rows { (oraw + ((i + r) * ldo + j) * 4).storeBytes(of: v * scale, as: Vec16.self) }
        }
        var j = 0
        while j + 64 <= n {
            var c00 = Vec16()
            var c01 = Vec16()
            var c02 = Vec16()
            var c03 = Vec16()
            var c10 = Vec16()
            var c11 = Vec16()
            var c12 = Vec16()
            var c13 = Vec16()
            var c20 = Vec16()
            var c21 = Vec16()
            var c22 = Vec16()
            var c23 = Vec16()
            var c30 = Vec16()
            var c31 = Vec16()
            var c32 = Vec16()
            var c33 = Vec16()
            for kk in 0..<k {
                let row = braw + (kk * ldb + j) * 4
                let b0 = row.loadUnaligned(as: Vec16.self)
                let b1 = row.loadUnaligned(fromByteOffset: 64, as: Vec16.self)
                let b2 = row.loadUnaligned(fromByteOffset: 128, as: Vec16.self)
                let b3 = row.loadUnaligned(fromByteOffset: 192, as: Vec16.self)
                var w = a0[kk]
                c00.addProduct(w, b0)
                c01.addProduct(w, b1)
                c02.addProduct(w, b2)
                c03.addProduct(w, b3)
                w = a1[kk]
                c10.addProduct(w, b0)
                c11.addProduct(w, b1)
                c12.addProduct(w, b2)
                c13.addProduct(w, b3)
                w = a2[kk]
                c20.addProduct(w, b0)
                c21.addProduct(w, b1)
                c22.addProduct(w, b2)
                c23.addProduct(w, b3)
                w = a3[kk]
                c30.addProduct(w, b0)
                c31.addProduct(w, b1)
                c32.addProduct(w, b2)
                c33.addProduct(w, b3)
            }
            store(0, j, c00)
            store(0, j + 16, c01)
            store(0, j + 32, c02)
            store(0, j + 48, c03)
            store(1, j, c10)
            store(1, j + 16, c11)
            store(1, j + 32, c12)
            store(1, j + 48, c13)
            store(2, j, c20)
            store(2, j + 16, c21)
            store(2, j + 32, c22)
            store(2, j + 48, c23)
            store(3, j, c30)
            store(3, j + 16, c31)
            store(3, j + 32, c32)
            store(3, j + 48, c33)
            j += 64
        }
        while j + 32 <= n {
            var c00 = Vec16()
            var c01 = Vec16()
            var c10 = Vec16()
            var c11 = Vec16()
            var c20 = Vec16()
            var c21 = Vec16()
            var c30 = Vec16()
            var c31 = Vec16()
            for kk in 0..<k {
                let row = braw + (kk * ldb + j) * 4
                let b0 = row.loadUnaligned(as: Vec16.self)
                let b1 = row.loadUnaligned(fromByteOffset: 64, as: Vec16.self)
                var w = a0[kk]
                c00.addProduct(w, b0)
                c01.addProduct(w, b1)
                w = a1[kk]
                c10.addProduct(w, b0)
                c11.addProduct(w, b1)
                w = a2[kk]
                c20.addProduct(w, b0)
                c21.addProduct(w, b1)
                w = a3[kk]
                c30.addProduct(w, b0)
                c31.addProduct(w, b1)
            }
            store(0, j, c00)
            store(0, j + 16, c01)
            store(1, j, c10)
            store(1, j + 16, c11)
            store(2, j, c20)
            store(2, j + 16, c21)
            store(3, j, c30)
            store(3, j + 16, c31)
            j += 32
        }
        while j + 16 <= n {
            var c0 = Vec16()
            var c1 = Vec16()
            var c2 = Vec16()
            var c3 = Vec16()
            for kk in 0..<k {
                let bv = (braw + (kk * ldb + j) * 4).loadUnaligned(as: Vec16.self)
                c0.addProduct(a0[kk], bv)
                c1.addProduct(a1[kk], bv)
                c2.addProduct(a2[kk], bv)
                c3.addProduct(a3[kk], bv)
            }
            store(0, j, c0)
            store(1, j, c1)
            store(2, j, c2)
            store(3, j, c3)
            j += 16
        }
        while j < n {
            for r in 0..<rows {
                var sum: Float = 0
                for kk in 0..<k { sum = sum.addingProduct(a[(i + r) * lda + kk], b[kk * ldb + j]) }
                out[(i + r) * ldo + j] = sum * scale
            }
            j += 1
        }
        i += 4
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
