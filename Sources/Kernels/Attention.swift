import Foundation
// Scaled dot-product attention over packed sequences.
//
// Tokens of a batch are concatenated without padding: sequence s owns rows offsets[s] ..< offsets[s+1]
// of every activation matrix. A query therefore only ever sees its own sequence's keys — padded keys
// get exactly zero attention, as with HF's additive float-min mask — and no [B, H, T, T] tensor exists.
// Work is split into (sequence, head) tasks; each keeps K_hᵀ [d, T] and one score row [T] in cache.
//
// Column layout of the fused projection output `qkv` (row stride ldqkv), for `heads` heads of size d:
//   Q of head h: columns h·d ..< (h+1)·d
//   K of head h: columns (heads + h)·d ..< …
//   V of head h: columns (2·heads + h)·d ..< …
// The context of head h goes to columns h·d ..< (h+1)·d of `ctx` (row stride ldctx) — head-major concat,
// exactly HF's layout, so W_O applies unchanged. A subnetwork plan passes only its kept heads.

/// ctx = softmax(Q Kᵀ · scale) V per (sequence, head). `probs`, if given, receives every P row:
/// the (s, h) block starts at probOffsets[s]·heads + h·len² … see `attentionProbOffset`.
public func attention(qkv: UnsafePointer<Float>, ldqkv: Int, heads: Int, headDim d: Int,
                      offsets: [Int], ctx: UnsafeMutablePointer<Float>, ldctx: Int,
                      probs: UnsafeMutablePointer<Float>? = nil, pool: ThreadPool = .shared) {
    let sequences = offsets.count - 1
    if sequences <= 0 || heads == 0 { return }
    let scale = 1 / Float(d).squareRoot()
    let probBase = attentionProbOffsets(offsets: offsets, heads: heads)
    let qa = UInt(bitPattern: qkv), ca = UInt(bitPattern: ctx), pa = probs.map { UInt(bitPattern: $0) }
    // One task per sequence (all its heads), so each task allocates its scratch once.
    pool.parallelFor(sequences) { s in
        let qkv = UnsafePointer<Float>(bitPattern: qa)!
        let ctx = UnsafeMutablePointer<Float>(bitPattern: ca)!
        let start = offsets[s], t = offsets[s + 1] - start
        if t == 0 { return }
        let tPad = (t + 15) & ~15
        let scratch = allocateFloats(d * tPad + tPad)
        defer { scratch.deallocate() }
        let kT = scratch                       // [d, tPad]: K_hᵀ, zero past t
        let scores = scratch + d * tPad        // [tPad]
        let kRaw = UnsafeRawPointer(kT)
        let sRaw = UnsafeMutableRawPointer(scores)
        for h in 0..<heads {
            for j in 0..<t {
                let krow = qkv + (start + j) * ldqkv + (heads + h) * d
                for c in 0..<d { kT[c * tPad + j] = krow[c] }
            }
            for c in 0..<d { for j in t..<tPad { kT[c * tPad + j] = 0 } }
            for i in 0..<t {
                let q = qkv + (start + i) * ldqkv + h * d
                // Scores for 64 keys at a time: four independent accumulator chains hide the FMA latency.
                var j = 0
                while j + 64 <= tPad {
                    var a0 = Vec16(), a1 = Vec16(), a2 = Vec16(), a3 = Vec16()
                    for c in 0..<d {
                        let qc = q[c], row = kRaw + (c * tPad + j) * 4
                        a0.addProduct(qc, row.load(as: Vec16.self))
                        a1.addProduct(qc, row.load(fromByteOffset: 64, as: Vec16.self))
                        a2.addProduct(qc, row.load(fromByteOffset: 128, as: Vec16.self))
                        a3.addProduct(qc, row.load(fromByteOffset: 192, as: Vec16.self))
                    }
                    sRaw.storeBytes(of: a0 * scale, toByteOffset: j * 4, as: Vec16.self)
                    sRaw.storeBytes(of: a1 * scale, toByteOffset: j * 4 + 64, as: Vec16.self)
                    sRaw.storeBytes(of: a2 * scale, toByteOffset: j * 4 + 128, as: Vec16.self)
                    sRaw.storeBytes(of: a3 * scale, toByteOffset: j * 4 + 192, as: Vec16.self)
                    j += 64
                }
                while j < tPad {
                    var acc = Vec16()
                    for c in 0..<d { acc.addProduct(q[c], kRaw.load(fromByteOffset: (c * tPad + j) * 4, as: Vec16.self)) }
                    sRaw.storeBytes(of: acc * scale, toByteOffset: j * 4, as: Vec16.self)
                    j += 16
                }
                softmaxRow(scores, count: t)
                if let pa {
                    let p = UnsafeMutablePointer<Float>(bitPattern: pa)! + probBase[s] + h * t * t + i * t
                    p.update(from: scores, count: t)
                }
                let out = ctx + (start + i) * ldctx + h * d
                let v = qkv + start * ldqkv + (2 * heads + h) * d
                if d % 16 == 0 && d <= 64 {
                    // ctx_i = Σ_j p_j V_j with the row held in (up to 4) vector registers.
                    weightedRowSum(scores, v, ldv: ldqkv, t: t, d: d, out: out)
                } else {
                    for c in 0..<d { out[c] = 0 }
                    for jj in 0..<t { axpy(scores[jj], v + jj * ldqkv, out, count: d) }
                }
            }
        }
    }
}

/// Start of sequence s's probability block in the `probs` buffer: Σ_{s'<s} heads·len(s')².
public func attentionProbOffsets(offsets: [Int], heads: Int) -> [Int] {
    var base = [Int](repeating: 0, count: offsets.count)
    for s in 0..<(offsets.count - 1) {
        let t = offsets[s + 1] - offsets[s]
        base[s + 1] = base[s] + heads * t * t
    }
    return base
}

/// out[0..<d] = Σ_j p[j]·v[j·ldv ..< j·ldv + d], for d ∈ {16, 32, 48, 64}.
@inline(__always)
func weightedRowSum(_ p: UnsafePointer<Float>, _ v: UnsafePointer<Float>, ldv: Int, t: Int, d: Int, out: UnsafeMutablePointer<Float>) {
    var a0 = Vec16(), a1 = Vec16(), a2 = Vec16(), a3 = Vec16()
    let raw = UnsafeRawPointer(v)
    for j in 0..<t {
        let w = p[j]
        let row = raw + j * ldv * 4
        a0.addProduct(w, row.loadUnaligned(as: Vec16.self))
        if d > 16 { a1.addProduct(w, row.loadUnaligned(fromByteOffset: 64, as: Vec16.self)) }
        if d > 32 { a2.addProduct(w, row.loadUnaligned(fromByteOffset: 128, as: Vec16.self)) }
        if d > 48 { a3.addProduct(w, row.loadUnaligned(fromByteOffset: 192, as: Vec16.self)) }
    }
    let o = UnsafeMutableRawPointer(out)
    o.storeBytes(of: a0, as: Vec16.self)
    if d > 16 { o.storeBytes(of: a1, toByteOffset: 64, as: Vec16.self) }
    if d > 32 { o.storeBytes(of: a2, toByteOffset: 128, as: Vec16.self) }
    if d > 48 { o.storeBytes(of: a3, toByteOffset: 192, as: Vec16.self) }
}

/// y[i] += a·x[i]
@inline(__always)
public func axpy(_ a: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int) {
    let xr = UnsafeRawPointer(x), yr = UnsafeMutableRawPointer(y)
    var i = 0
    while i + 16 <= count {
        var v = yr.loadUnaligned(fromByteOffset: i * 4, as: Vec16.self)
        v.addProduct(a, xr.loadUnaligned(fromByteOffset: i * 4, as: Vec16.self))
        yr.storeBytes(of: v, toByteOffset: i * 4, as: Vec16.self)
        i += 16
    }
    while i < count { y[i] = y[i].addingProduct(a, x[i]); i += 1 }
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
                for c in 0..<d { s += Double(qkv[i * ldqkv + h * d + c]) * Double(qkv[j * ldqkv + (heads + h) * d + c]) }
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
