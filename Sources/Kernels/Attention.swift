import Foundation

// Scaled dot-product attention over packed sequences.
//
// Tokens of a batch are concatenated without padding: sequence s owns rows offsets[s] ..< offsets[s+1]
// of every activation matrix. A query therefore only ever sees its own sequence's keys — padded keys
// get exactly zero attention, as with HF's additive float-min mask — and no [B, H, T, T] tensor exists.
// Work is split into one task per sequence; for each head it keeps K_hᵀ [d, T] (every head's at once
// while they fit in 512 KB: T ≤ 128 for bert-base) and four score rows [4, T] in cache.
//
// Column layout of the fused projection output `qkv` (row stride ldqkv), for `heads` heads of size d:
//   Q of head h: columns h·d ..< (h+1)·d
//   K of head h: columns (heads + h)·d ..< …
//   V of head h: columns (2·heads + h)·d ..< …
// The context of head h goes to columns h·d ..< (h+1)·d of `ctx` (row stride ldctx) — head-major concat,
// exactly HF's layout, so W_O applies unchanged. A subnetwork plan passes only its kept heads.

/// ctx = Dropout(softmax(Q Kᵀ · scale)) V per (sequence, head). `probs`, if given, receives every P row (before
/// dropout): the (s, h) block starts at attentionProbOffsets(offsets, heads)[s] + h·len². `dropout`, if given,
/// holds the keep bits of the probabilities in the same layout (training mode). `slots`:
/// where each head's block sits when the heads passed are some of a layer's (identity otherwise). `firstQueryOnly`:
/// only each sequence's first query row (its [CLS] token) — its context row and probability row, the same values
/// as when every row runs; the other rows of ctx and probs are left as they were.
public func attention(
    qkv: UnsafePointer<Float>, ldqkv: Int, heads: Int, headDim d: Int,
    offsets: [Int], ctx: UnsafeMutablePointer<Float>, ldctx: Int,
    probs: UnsafeMutablePointer<Float>? = nil, dropout: DropoutBits? = nil, slots: ProbabilitySlots? = nil,
    firstQueryOnly: Bool = false, pool: ThreadPool = .shared
) {
    let sequences = offsets.count - 1
    if sequences <= 0 || heads == 0 { return }
    let scale = 1 / Float(d).squareRoot()
    let slots = slots ?? .identity(heads)
    precondition(slots.slot.count == heads, "one probability slot per head")
    let probBase = attentionProbOffsets(offsets: offsets, heads: slots.perSequence)
    let qa = UInt(bitPattern: qkv)
    let ca = UInt(bitPattern: ctx)
    let pa = probs.map { UInt(bitPattern: $0) }
    // One task per sequence (all its heads), so each task allocates its scratch once.
    pool.parallelFor(sequences) { s in
        let qkv = UnsafePointer<Float>(bitPattern: qa)!
        let ctx = UnsafeMutablePointer<Float>(bitPattern: ca)!
        let start = offsets[s]
        let t = offsets[s + 1] - start
        if t == 0 { return }
        let tPad = (t + 15) & ~15
        // Every head's keys are transposed in one pass when they fit (HANS t ≈ 18; bert-base t = 128): each
        // key row's heads·d values are then read front to back, where one head's d values (128–256 bytes)
        // per row left the loads waiting on a new cache line every few elements (35% of the kernel's
        // samples at t = 128).
        let headsPerTranspose = heads * d * tPad <= attentionTransposeFloats ? heads : 1
        let scratch = allocateFloats(headsPerTranspose * d * tPad + attentionQueryBlock * tPad)
        defer { scratch.deallocate() }
        let scores = scratch + headsPerTranspose * d * tPad  // [4, tPad]: one score row per query of the block
        for h in 0..<heads {
            // kT: [d, tPad], K_hᵀ, zero past t.
            let kT = scratch + (h % headsPerTranspose) * d * tPad
            if h % headsPerTranspose == 0 {
                let width = headsPerTranspose * d
                // The zero padding past t: short rows are mostly padding (t ≈ 18 of 32), so clear the whole
                // block with one vectorised fill first rather than element by element after.
                if t < tPad { kT.update(repeating: 0, count: width * tPad) }
                transposeRows(
                    qkv + start * ldqkv + (heads + h) * d, ld: ldqkv, rows: t, width: width, into: kT, ldT: tPad)
            }
            let v = qkv + start * ldqkv + (2 * heads + h) * d
            // Query rows four at a time: every K (or V) vector loaded serves four rows — 16 FMAs per 8 loads
            // on 64 keys — so the loops are bound by the FMA units rather than by loads.
            var i = 0
            let queries = firstQueryOnly ? 1 : t
            while i < queries {
                let rows = min(attentionQueryBlock, queries - i)
                // scores [rows, tPad] = scale · Q rows · Kᵀ (Kᵀ is zero past t, so padded columns score 0 and the
                // softmax's count ignores them); each summed over c in ascending order.
                rowMajorProduct(
                    m: rows, n: tPad, k: d, a: qkv + (start + i) * ldqkv + h * d, lda: ldqkv,
                    b: kT, ldb: tPad, scale: scale, out: scores, ldo: tPad)
                softmaxRows(scores, ld: tPad, rows: rows, count: t)
                for r in 0..<rows {
                    let row = scores + r * tPad
                    let offset = probBase[s] + slots.slot[h] * t * t + (i + r) * t
                    if let pa { (UnsafeMutablePointer<Float>(bitPattern: pa)! + offset).update(from: row, count: t) }
                    dropout?.multiply(row, from: offset, count: t)
                }
                let out = ctx + (start + i) * ldctx + h * d
                if d % 16 == 0 && d <= 64 {
                    weightedRowSum4(scores, ldp: tPad, rows: rows, v, ldv: ldqkv, t: t, d: d, out: out, ldout: ldctx)
                } else {
                    for r in 0..<rows {
                        let o = out + r * ldctx
                        for c in 0..<d { o[c] = 0 }
                        for jj in 0..<t { axpy(scores[r * tPad + jj], v + jj * ldqkv, o, count: d) }
                    }
                }
                i += attentionQueryBlock
            }
        }
    }
}

/// Floats of transposed keys `attention` keeps per sequence: every head's at once up to this (512 KB — bert-base's
/// 12 heads at T = 128 — within a 1 MB L2), else one head at a time.
let attentionTransposeFloats = 131_072

/// dst[c·ldT + j] = src[j·ld + c] for j < rows, c < width, sixteen source rows at a time: each destination
/// line is then written whole (16 consecutive j), and the sixteen source rows are read front to back side by
/// side — where one row at a time wrote `width` lines one float each and waited on every new source row.
@inline(__always)
func transposeRows(
    _ src: UnsafePointer<Float>, ld: Int, rows: Int, width: Int, into dst: UnsafeMutablePointer<Float>, ldT: Int
) {
    var j0 = 0
    while j0 < rows {
        let n = min(16, rows - j0)
        let block = src + j0 * ld
        if n == 16 {
            for c in 0..<width {
                let o = dst + c * ldT + j0
                let p = block + c
                o[0] = p[0]
                o[1] = p[ld]
                o[2] = p[2 * ld]
                o[3] = p[3 * ld]
                o[4] = p[4 * ld]
                o[5] = p[5 * ld]
                o[6] = p[6 * ld]
                o[7] = p[7 * ld]
                o[8] = p[8 * ld]
                o[9] = p[9 * ld]
                o[10] = p[10 * ld]
                o[11] = p[11 * ld]
                o[12] = p[12 * ld]
                o[13] = p[13 * ld]
                o[14] = p[14 * ld]
                o[15] = p[15 * ld]
            }
        } else {
            for c in 0..<width {
                let o = dst + c * ldT + j0
                for jj in 0..<n { o[jj] = block[jj * ld + c] }
            }
        }
        j0 += 16
    }
}

/// `softmaxRow` on `rows` (≤ 4) score rows at once, row r at p + r·ld, each padded to a multiple of 16
/// floats (ld ≥ that): the rows' dependency chains (horizontal max, exponentials, horizontal sum) run
/// side by side instead of one after another — short HANS rows are almost all latency. Every row gets
/// exactly softmaxRow's operations in its order, so the values are bit-identical; the padding past
/// `count` is overwritten with zeros.
@inline(__always)
func softmaxRows(_ p: UnsafeMutablePointer<Float>, ld: Int, rows: Int, count: Int) {
    let q = SoftmaxRows(p, ld: ld, rows: rows, count: count)
    let maxima = q.maxima()
    let (inverse, tails) = q.exponentiate(maxima)
    q.normalise(inverse, tails)
}

/// The up-to-four rows of one `softmaxRows` call: byte offsets of rows 1–3 (past `rows` they alias the last real
/// row), the vector body and the tail, whose last vector holds −∞ past `count` (exp(−∞) = 0), as in softmaxRow.
struct SoftmaxRows {
    typealias Four<T> = (T, T, T, T)
    let raw: UnsafeMutableRawPointer
    let rows: Int, body: Int, tail: Int
    let offsets: Four<Int>
    let tailVectors: Four<Vec16>

    @inline(__always)
    init(_ p: UnsafeMutablePointer<Float>, ld: Int, rows: Int, count: Int) {
        raw = UnsafeMutableRawPointer(p)
        (self.rows, body, tail) = (rows, count & ~15, count - (count & ~15))
        offsets = (0, min(1, rows - 1) * ld * 4, min(2, rows - 1) * ld * 4, min(3, rows - 1) * ld * 4)
        let lanes = Vec16(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)
        let pastTail = lanes .>= Float(tail)
        let (raw, body, tail) = (raw, body, tail)
        @inline(__always) func tailVector(_ offset: Int) -> Vec16 {
            tail == 0
                ? Vec16(repeating: -.infinity)
                : raw.loadUnaligned(fromByteOffset: offset + body * 4, as: Vec16.self).replacing(
                    with: -.infinity, where: pastTail)
        }
        tailVectors = (tailVector(offsets.0), tailVector(offsets.1), tailVector(offsets.2), tailVector(offsets.3))
    }

    @inline(__always)
    func load(_ offset: Int, _ o: Int) -> Vec16 { raw.loadUnaligned(fromByteOffset: offset + o, as: Vec16.self) }

    /// Row r's vector `v` stored at byte `o` of its row, for real rows only (the others alias row rows−1).
    @inline(__always)
    func store(_ r: Int, _ v: Vec16, _ o: Int) {
        guard r < rows else { return }
        let offset = r == 0 ? offsets.0 : r == 1 ? offsets.1 : r == 2 ? offsets.2 : offsets.3
        raw.storeBytes(of: v, toByteOffset: offset + o, as: Vec16.self)
    }

    /// Each row's maximum.
    @inline(__always)
    func maxima() -> Four<Float> {
        var m = tailVectors
        var i = 0
        while i < body {
            let o = i * 4
            let v = (load(offsets.0, o), load(offsets.1, o), load(offsets.2, o), load(offsets.3, o))
            m.0 = m.0.replacing(with: v.0, where: v.0 .> m.0)
            m.1 = m.1.replacing(with: v.1, where: v.1 .> m.1)
            m.2 = m.2.replacing(with: v.2, where: v.2 .> m.2)
            m.3 = m.3.replacing(with: v.3, where: v.3 .> m.3)
            i += 16
        }
        return (horizontalMax(m.0), horizontalMax(m.1), horizontalMax(m.2), horizontalMax(m.3))
    }

    /// exp(x − max) stored in place over the body; returns each row's 1/Σ and its tail's exponentials.
    @inline(__always)
    func exponentiate(_ x: Four<Float>) -> (inverse: Four<Float>, tails: Four<Vec16>) {
        var s = (Vec16(), Vec16(), Vec16(), Vec16())
        var i = 0
        while i < body {
            let o = i * 4
            let e = (
                exp16(load(offsets.0, o) - x.0), exp16(load(offsets.1, o) - x.1), exp16(load(offsets.2, o) - x.2),
                exp16(load(offsets.3, o) - x.3)
            )
            store(0, e.0, o)
            store(1, e.1, o)
            store(2, e.2, o)
            store(3, e.3, o)
            s.0 += e.0
            s.1 += e.1
            s.2 += e.2
            s.3 += e.3
            i += 16
        }
        let t = (
            exp16(tailVectors.0 - x.0), exp16(tailVectors.1 - x.1), exp16(tailVectors.2 - x.2),
            exp16(tailVectors.3 - x.3)
        )
        s.0 += t.0
        s.1 += t.1
        s.2 += t.2
        s.3 += t.3
        return ((1 / s.0.sum(), 1 / s.1.sum(), 1 / s.2.sum(), 1 / s.3.sum()), t)
    }

    /// Every stored exponential, and the tail's, times its row's 1/Σ.
    @inline(__always)
    func normalise(_ inverse: Four<Float>, _ tails: Four<Vec16>) {
        var i = 0
        while i < body {
            let o = i * 4
            store(0, load(offsets.0, o) * inverse.0, o)
            store(1, load(offsets.1, o) * inverse.1, o)
            store(2, load(offsets.2, o) * inverse.2, o)
            store(3, load(offsets.3, o) * inverse.3, o)
            i += 16
        }
        guard tail > 0 else { return }
        let o = body * 4
        store(0, tails.0 * inverse.0, o)
        store(1, tails.1 * inverse.1, o)
        store(2, tails.2 * inverse.2, o)
        store(3, tails.3 * inverse.3, o)
    }
}

/// Query rows processed together by `attention`.
let attentionQueryBlock = 4

/// For r < rows (≤ 4): out[r·ldout ..< +d] = Σ_j p[r·ldp + j·step]·v[j·ldv ..< +d], d ∈ {16, 32, 48, 64}.
/// Rows past `rows` are computed from row rows−1's weights and discarded. With ldp = 1 and step = a matrix's row
/// stride, the weights are four of its columns: a product with the matrix transposed, without transposing it.
@inline(__always)
func weightedRowSum4(
    _ p: UnsafePointer<Float>, ldp: Int, step: Int = 1, rows: Int, _ v: UnsafePointer<Float>, ldv: Int, t: Int,
    d: Int, out: UnsafeMutablePointer<Float>, ldout: Int
) {
    let weights = (p, p + min(1, rows - 1) * ldp, p + min(2, rows - 1) * ldp, p + min(3, rows - 1) * ldp)
    let a =
        d <= 32
        ? narrowRowSums(weights, step: step, v, ldv: ldv, t: t, d: d)
        : wideRowSums(weights, step: step, v, ldv: ldv, t: t, d: d)
    storeHeadRow(out, a.0.0, a.0.1, a.0.2, a.0.3, d: d)
    if rows > 1 { storeHeadRow(out + ldout, a.1.0, a.1.1, a.1.2, a.1.3, d: d) }
    if rows > 2 { storeHeadRow(out + 2 * ldout, a.2.0, a.2.1, a.2.2, a.2.3, d: d) }
    if rows > 3 { storeHeadRow(out + 3 * ldout, a.3.0, a.3.1, a.3.2, a.3.3, d: d) }
}

typealias RowWeights = (UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>)
typealias HeadRow = (Vec16, Vec16, Vec16, Vec16)

/// `weightedRowSum4`'s sums for d ≤ 32: two vectors per row (the others zero).
@inline(__always)
func narrowRowSums(_ p: RowWeights, step: Int, _ v: UnsafePointer<Float>, ldv: Int, t: Int, d: Int) -> (
    HeadRow, HeadRow, HeadRow, HeadRow
) {
    let raw = UnsafeRawPointer(v)
    var a0 = (Vec16(), Vec16())
    var a1 = a0
    var a2 = a0
    var a3 = a0
    for j in 0..<t {
        let row = raw + j * ldv * 4
        let v0 = row.loadUnaligned(as: Vec16.self)
        let v1 = d > 16 ? row.loadUnaligned(fromByteOffset: 64, as: Vec16.self) : Vec16()
        let at = j * step
        var w = p.0[at]
        a0.0.addProduct(w, v0)
        a0.1.addProduct(w, v1)
        w = p.1[at]
        a1.0.addProduct(w, v0)
        a1.1.addProduct(w, v1)
        w = p.2[at]
        a2.0.addProduct(w, v0)
        a2.1.addProduct(w, v1)
        w = p.3[at]
        a3.0.addProduct(w, v0)
        a3.1.addProduct(w, v1)
    }
    let z = Vec16()
    return ((a0.0, a0.1, z, z), (a1.0, a1.1, z, z), (a2.0, a2.1, z, z), (a3.0, a3.1, z, z))
}

/// `weightedRowSum4`'s sums for 32 < d ≤ 64: four vectors per row.
@inline(__always)
func wideRowSums(_ p: RowWeights, step: Int, _ v: UnsafePointer<Float>, ldv: Int, t: Int, d: Int) -> (
    HeadRow, HeadRow, HeadRow, HeadRow
) {
    let raw = UnsafeRawPointer(v)
    var a0 = (Vec16(), Vec16(), Vec16(), Vec16())
    var a1 = a0
    var a2 = a0
    var a3 = a0
    for j in 0..<t {
        let row = raw + j * ldv * 4
        let v0 = row.loadUnaligned(as: Vec16.self)
        let v1 = row.loadUnaligned(fromByteOffset: 64, as: Vec16.self)
        let v2 = row.loadUnaligned(fromByteOffset: 128, as: Vec16.self)
        let v3 = d > 48 ? row.loadUnaligned(fromByteOffset: 192, as: Vec16.self) : Vec16()
        let at = j * step
        addRow(&a0, p.0[at], v0, v1, v2, v3)
        addRow(&a1, p.1[at], v0, v1, v2, v3)
        addRow(&a2, p.2[at], v0, v1, v2, v3)
        addRow(&a3, p.3[at], v0, v1, v2, v3)
    }
    return (a0, a1, a2, a3)
}

@inline(__always)
func addRow(_ a: inout HeadRow, _ w: Float, _ v0: Vec16, _ v1: Vec16, _ v2: Vec16, _ v3: Vec16) {
    a.0.addProduct(w, v0)
    a.1.addProduct(w, v1)
    a.2.addProduct(w, v2)
    a.3.addProduct(w, v3)
}

/// Stores the first d (∈ {16, 32, 48, 64}) lanes of v0…v3 at out.
@inline(__always)
func storeHeadRow(_ out: UnsafeMutablePointer<Float>, _ v0: Vec16, _ v1: Vec16, _ v2: Vec16, _ v3: Vec16, d: Int) {
    let o = UnsafeMutableRawPointer(out)
    o.storeBytes(of: v0, as: Vec16.self)
    if d > 16 { o.storeBytes(of: v1, toByteOffset: 64, as: Vec16.self) }
    if d > 32 { o.storeBytes(of: v2, toByteOffset: 128, as: Vec16.self) }
    if d > 48 { o.storeBytes(of: v3, toByteOffset: 192, as: Vec16.self) }
}

/// Where each head's probability block (and its dropout multipliers) sits among a sequence's `perSequence`
/// blocks: a pass over some of a layer's heads keeps the whole layer's layout, so the multipliers drawn for the
/// layer stay with their heads whichever heads run.
public struct ProbabilitySlots: Sendable {
    public let perSequence: Int
    public let slot: [Int]
    public init(perSequence: Int, slot: [Int]) {
        precondition(slot.allSatisfy { (0..<perSequence).contains($0) }, "a slot outside the layout")
        (self.perSequence, self.slot) = (perSequence, slot)
    }
    public static func identity(_ heads: Int) -> ProbabilitySlots {
        ProbabilitySlots(perSequence: heads, slot: Array(0..<heads))
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
func weightedRowSum(
    _ p: UnsafePointer<Float>, _ v: UnsafePointer<Float>, ldv: Int, t: Int, d: Int, out: UnsafeMutablePointer<Float>
) {
    var a0 = Vec16()
    var a1 = Vec16()
    var a2 = Vec16()
    var a3 = Vec16()
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
    let xr = UnsafeRawPointer(x)
    let yr = UnsafeMutableRawPointer(y)
    var i = 0
    while i + 16 <= count {
        var v = yr.loadUnaligned(fromByteOffset: i * 4, as: Vec16.self)
        v.addProduct(a, xr.loadUnaligned(fromByteOffset: i * 4, as: Vec16.self))
        yr.storeBytes(of: v, toByteOffset: i * 4, as: Vec16.self)
        i += 16
    }
    while i < count {
        y[i] = y[i].addingProduct(a, x[i])
        i += 1
    }
}
