import Foundation

// y = x · Wᵀ + b  — the one matrix product every BERT layer is made of (HF Linear layout, W is [out, in]).
//
// GotoBLAS/BLIS structure, specialised for weights that never change:
//   * W is packed once, at load time, into panels of NR output columns: panel p holds, for every k,
//     the NR values W[p·NR ..< p·NR+NR][k] next to each other ([panels][K][NR], zero-padded past N).
//     The micro-kernel then reads B with aligned vector loads and never touches W's original layout.
//   * The output is cut into tiles of MC rows × NC columns; tiles are the unit of parallel work.
//     Inside a tile: for each KC-slice of K, for each panel, for each MR-row strip → micro-kernel.
//     A KC×NR panel slice stays in L1/L2 while all MR-row strips of the tile stream past it.
//   * The micro-kernel keeps an MR×NR block of C in registers: 6 × (4 × SIMD16) = 24 zmm
//     accumulators with AVX-512, 6 × (2 × SIMD8) = 12 ymm accumulators otherwise.
//   * The bias is where the accumulators start (y = b + Σ x·w: no separate pass over C for it); an
//     epilogue (GELU, residual, LayerNorms over whole rows) runs on each finished tile while it is in cache.
// Every output element is summed in one fixed order (bias first, k ascending inside a KC slice, slices added in
// order) whatever the tiling or thread count, so results do not depend on the number of threads.

#if HCORE_AVX512
    public typealias GemmVec = SIMD16<Float>
    public let gemmVectorsPerRow = 4
#else
    public typealias GemmVec = SIMD8<Float>
    public let gemmVectorsPerRow = 2
#endif
/// Columns of one packed panel.
public let gemmNR = GemmVec.scalarCount * gemmVectorsPerRow
/// Rows of one micro-kernel strip.
public let gemmMR = 6
/// Depth of one K slice: a KC × NR weight slice (192 KB at 768 × 64) stays in L2 while every row strip of a
/// tile streams past it, and BERT's K = 768 products (384 for MiniLM) finish in registers, with no partial sums
/// stored and reloaded. An L1-sized slice (KC 192) measured 1.5–2% slower on all four BERT shapes (BENCHMARKS.md).
/// Settings (HCORE_GEMM_KC / HCORE_GEMM_MC) override the tile sizes, for tuning only.
public let gemmKC = Settings.gemmKC
/// Rows of one tile (a multiple of MR).
public let gemmMC = max(1, Settings.gemmMC / gemmMR) * gemmMR

/// A Linear layer's weight [n, k] (and optional bias [n]) packed into NR-column panels.
public final class PackedLinear: @unchecked Sendable {
    public let n: Int  // output features
    public let k: Int  // input features
    public let panelCount: Int
    /// [panelCount][k][gemmNR], 64-byte aligned, zero past column n.
    public let panels: UnsafeMutablePointer<Float>
    /// [n] (zero-padded to panelCount·NR) or nil.
    public let bias: UnsafeMutablePointer<Float>?

    /// Packs `weight` ([n, k] row-major, PyTorch Linear layout) and copies `bias` ([n]).
    public init(weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?, n: Int, k: Int) {
        precondition(n > 0 && k > 0, "PackedLinear needs n, k > 0")
        self.n = n
        self.k = k
        panelCount = (n + gemmNR - 1) / gemmNR
        panels = PackedLinear.pack(weight, n: n, k: k)
        self.bias = bias.map { PackedLinear.paddedBias($0, n: n) }
    }

    /// Takes ownership of already packed panels ([panelCount][k][gemmNR], zero past column n) and a bias copy.
    init(packedPanels: UnsafeMutablePointer<Float>, bias: [Float]?, n: Int, k: Int) {
        self.n = n
        self.k = k
        panelCount = (n + gemmNR - 1) / gemmNR
        panels = packedPanels
        self.bias = bias.map { b in b.withUnsafeBufferPointer { PackedLinear.paddedBias($0.baseAddress!, n: n) } }
    }

    /// Convenience for arrays: `weight.count == n*k`, `bias?.count == n`.
    public init(weight: [Float], bias: [Float]?, n: Int, k: Int) {
        precondition(n > 0 && k > 0 && weight.count == n * k && (bias == nil || bias!.count == n))
        self.n = n
        self.k = k
        panelCount = (n + gemmNR - 1) / gemmNR
        panels = weight.withUnsafeBufferPointer { PackedLinear.pack($0.baseAddress!, n: n, k: k) }
        self.bias = bias.map { b in b.withUnsafeBufferPointer { PackedLinear.paddedBias($0.baseAddress!, n: n) } }
    }

    /// A copy of `bias` ([n]) zero-padded to whole panels, so the micro-kernel can start its accumulators
    /// from the bias with full-width vector loads on the last, ragged panel too.
    private static func paddedBias(_ bias: UnsafePointer<Float>, n: Int) -> UnsafeMutablePointer<Float> {
        let padded = (n + gemmNR - 1) / gemmNR * gemmNR
        let copy = allocateFloats(padded)
        copy.update(from: bias, count: n)
        (copy + n).update(repeating: 0, count: padded - n)
        return copy
    }

    private static func pack(_ weight: UnsafePointer<Float>, n: Int, k: Int) -> UnsafeMutablePointer<Float> {
        let panelCount = (n + gemmNR - 1) / gemmNR
        let panels = allocateFloats(panelCount * k * gemmNR)
        for p in 0..<panelCount {
            let dst = panels + p * k * gemmNR
            for j in 0..<gemmNR {
                let row = p * gemmNR + j
                if row < n {
                    let src = weight + row * k
                    for kk in 0..<k { dst[kk * gemmNR + j] = src[kk] }
                } else {
                    for kk in 0..<k { dst[kk * gemmNR + j] = 0 }
                }
            }
        }
        return panels
    }

    /// The original weight element W[row][col] (for tests and for unpacking).
    public func weight(_ row: Int, _ col: Int) -> Float {
        panels[(row / gemmNR) * k * gemmNR + col * gemmNR + row % gemmNR]
    }

    /// Bytes held by the packed panels and bias.
    public var byteCount: Int { (panelCount * k * gemmNR + (bias == nil ? 0 : panelCount * gemmNR)) * 4 }

    deinit {
        panels.deallocate()
        bias?.deallocate()
    }
}

/// What is applied to each output element after the product.
public enum GemmEpilogue {
    /// y = x·Wᵀ (bias ignored even if present).
    case none
    /// y = x·Wᵀ + b
    case bias
    /// y = gelu_erf(x·Wᵀ + b)
    case biasGELU
    /// y = x·Wᵀ + b + residual, residual [m, n] with row stride `ld`.
    case biasResidual(UnsafePointer<Float>, ld: Int)
    /// u = x·Wᵀ + b; y = gelu'(u) and `values` [m, n] (row stride `ld`) = gelu(u): a training-mode layer's forward,
    /// whose backward reads only the derivative (the values are `geluWithDerivative`'s).
    case biasGELUKeepingDerivative(values: UnsafeMutablePointer<Float>, ld: Int)
    /// y = (x·Wᵀ) ⊙ m, m [m, n] with row stride `ld` (bias ignored): a backward through an elementwise factor.
    case multiplying(UnsafePointer<Float>, ld: Int)
    /// g = x·Wᵀ + b + residual, then the chain's LayerNorms of each row of g while it is in cache, into the chain's
    /// output. If that is C itself, the LayerNorms run in place; otherwise C is scratch, its contents unspecified.
    case biasResidualNormalized(UnsafePointer<Float>, ld: Int, LayerNormChain)
}

/// out[m, n] (row stride ldc) = epilogue(x[m, k] (row stride lda) · Wᵀ). With `inputs`, only those of W's input
/// columns: x is then [m, inputs.count], the product over W[:, inputs] (a backward whose gradient is known zero
/// on the other inputs' rows).
public func gemm(
    _ x: UnsafePointer<Float>, rows m: Int, lda: Int,
    _ w: PackedLinear, out: UnsafeMutablePointer<Float>, ldc: Int,
    epilogue: GemmEpilogue = .bias, inputs: Range<Int>? = nil, pool: ThreadPool = .shared,
    kc kcMax: Int = gemmKC, tilePanels: Int? = nil, mc mcOverride: Int? = nil
) {
    // kc, tilePanels, mc: tile-size overrides for `hcore-bench gemm-ab` tuning. tilePanels and mc never change
    // a result; kc does (it sets where partial sums are stored and added), so the model never passes it.
    if m == 0 { return }
    precondition(kcMax > 0 && (tilePanels ?? 1) > 0)
    let n = w.n
    let inputs = inputs ?? 0..<w.k
    precondition(inputs.lowerBound >= 0 && inputs.upperBound <= w.k && !inputs.isEmpty, "inputs outside W's columns")
    let k = inputs.count
    let mc = max(gemmMR, (mcOverride ?? gemmMC) / gemmMR * gemmMR)
    let addsBias: Bool
    switch epilogue {
    case .none, .multiplying: addsBias = false
    default: addsBias = w.bias != nil
    }
    let xAddress = UInt(bitPattern: x)
    let outAddress = UInt(bitPattern: out)

    /// One tile: rows row0 ..< row0+rows, panels p0 ..< p1, all of K, written to C's rows from cRow0, then the
    /// epilogue. (Applying the epilogue in the micro-kernel's registers, or to each MR×NR block while in L1, was
    /// measured: no faster — slower with GELU in registers.)
    @inline(__always)
    func tile(_ row0: Int, _ rows: Int, _ p0: Int, _ p1: Int, _ cRow0: Int) {
        let x = UnsafePointer<Float>(bitPattern: xAddress)!
        let out = UnsafeMutablePointer<Float>(bitPattern: outAddress)!
        var k0 = 0
        while k0 < k {
            let kc = min(kcMax, k - k0)
            for p in p0..<p1 {
                let b = UnsafePointer(w.panels + (p * w.k + inputs.lowerBound + k0) * gemmNR)
                let col0 = p * gemmNR
                let cols = min(gemmNR, n - col0)
                // The first K slice starts its accumulators from the bias (b + Σ x·w, one pass over C fewer).
                let start = k0 == 0 && addsBias ? UnsafePointer(w.bias! + col0) : nil
                var r = 0
                while r < rows {
                    let strip = min(gemmMR, rows - r)
                    let c = out + (cRow0 + r) * ldc + col0
                    microKernel(
                        kc: kc, a: x + (row0 + r) * lda + k0, lda: lda, rows: strip,
                        b: b, c: c, ldc: ldc, cols: cols, accumulate: k0 > 0, start: start)
                    r += gemmMR
                }
            }
            k0 += kc
        }
        let col0 = p0 * gemmNR
        let cols = min(n, p1 * gemmNR) - col0
        applyEpilogue(epilogue, c: out + cRow0 * ldc + col0, ldc: ldc, rows: rows, col0: col0, cols: cols, row0: row0)
    }

    if case .biasResidualNormalized(_, _, let chain) = epilogue {
        wholeRowTiles(rows: m, mc: mc, panels: w.panelCount, scratch: chain.out != out, pool: pool, tile)
    } else {
        panelTiles(rows: m, mc: mc, panels: w.panelCount, tilePanels: tilePanels, pool: pool, tile)
    }
}

/// Tiles of MC rows (a multiple of MR) × NC panels handed to the pool; narrower tiles when there are few rows, so
/// that short batches still give every thread work. `tile(row0, rows, p0, p1, cRow0)`.
@inline(__always)
private func panelTiles(
    rows m: Int, mc: Int, panels: Int, tilePanels: Int?, pool: ThreadPool, _ tile: (Int, Int, Int, Int, Int) -> Void
) {
    let rowTiles = (m + mc - 1) / mc
    var panelsPerTile = tilePanels ?? max(1, 256 / gemmNR)
    while panelsPerTile > 1 && rowTiles * ((panels + panelsPerTile - 1) / panelsPerTile) < 4 * pool.threadCount {
        panelsPerTile /= 2
    }
    let colTiles = (panels + panelsPerTile - 1) / panelsPerTile
    pool.parallelFor(rowTiles * colTiles) { t in
        // Row tiles vary fastest: consecutive tasks (on either thread) reuse the same packed weight
        // chunk while it is in cache; the activations (rows) are the smaller operand for BERT shapes.
        let ct = t / rowTiles
        let rt = t % rowTiles
        let row0 = rt * mc
        let p0 = ct * panelsPerTile
        tile(row0, min(mc, m - row0), p0, min(panels, p0 + panelsPerTile), row0)
    }
}

/// Tiles that span every panel, for an epilogue that needs whole rows (a LayerNorm): each task owns a contiguous
/// run of rows. With `scratch`, C is scratch: a task's tiles all reuse its run's first rows, which stay in cache
/// instead of streaming [m, n] through memory and back.
@inline(__always)
private func wholeRowTiles(
    rows m: Int, mc: Int, panels: Int, scratch: Bool, pool: ThreadPool, _ tile: (Int, Int, Int, Int, Int) -> Void
) {
    let tasks = min(m, 4 * pool.threadCount)
    pool.parallelFor(tasks) { t in
        let (r0, r1) = (t * m / tasks, (t + 1) * m / tasks)
        var row = r0
        while row < r1 {
            let rows = min(mc, r1 - row)
            tile(row, rows, 0, panels, scratch ? r0 : row)
            row += rows
        }
    }
}

@inline(__always)
private func applyEpilogue(
    _ e: GemmEpilogue, c: UnsafeMutablePointer<Float>, ldc: Int,
    rows: Int, col0: Int, cols: Int, row0: Int
) {
    // The bias is already in: the micro-kernel started the accumulators from it.
    switch e {
    case .none, .bias:
        return
    case .biasGELU:
        for i in 0..<rows { geluInPlace(c + i * ldc, count: cols) }
    case .biasResidual(let res, let ld):
        for i in 0..<rows { addVectors(c + i * ldc, res + (row0 + i) * ld + col0, count: cols) }
    case .biasGELUKeepingDerivative(let values, let ld):
        for i in 0..<rows { geluWithDerivative(c + i * ldc, out: values + (row0 + i) * ld + col0, count: cols) }
    case .multiplying(let m, let ld):
        for i in 0..<rows { multiplyVectors(c + i * ldc, m + (row0 + i) * ld + col0, count: cols) }
    case .biasResidualNormalized(let res, let ld, let chain):
        chain.apply(c, rows: rows, ld: ldc, index: row0, count: cols, adding: res + row0 * ld, addingLD: ld)
    }
}

/// C[rows ≤ MR, cols ≤ NR] (+)= start + A[rows, kc] · B-panel slice[kc, NR]; `start` (NR values, the bias)
/// is each row's initial accumulator, zero if nil.
@inline(__always)
private func microKernel(
    kc: Int, a: UnsafePointer<Float>, lda: Int, rows: Int,
    b: UnsafePointer<Float>, c: UnsafeMutablePointer<Float>, ldc: Int, cols: Int,
    accumulate: Bool, start: UnsafePointer<Float>?
) {
    // Rows past `rows` re-read the last valid row; their results are discarded.
    let a0 = a
    let a1 = a + min(1, rows - 1) * lda
    let a2 = a + min(2, rows - 1) * lda
    let a3 = a + min(3, rows - 1) * lda
    let a4 = a + min(4, rows - 1) * lda
    let a5 = a + min(5, rows - 1) * lda
    let bv = UnsafeRawPointer(b)
    let stride = gemmNR * 4
    #if HCORE_AVX512
        var i0 = GemmVec()
        var i1 = GemmVec()
        var i2 = GemmVec()
        var i3 = GemmVec()
        if let start {
            let s = UnsafeRawPointer(start)
            i0 = s.loadUnaligned(as: GemmVec.self)
            i1 = s.loadUnaligned(fromByteOffset: 64, as: GemmVec.self)
            i2 = s.loadUnaligned(fromByteOffset: 128, as: GemmVec.self)
            i3 = s.loadUnaligned(fromByteOffset: 192, as: GemmVec.self)
        }
        var c00 = i0
        var c01 = i1
        var c02 = i2
        var c03 = i3
        var c10 = i0
        var c11 = i1
        var c12 = i2
        var c13 = i3
        var c20 = i0
        var c21 = i1
        var c22 = i2
        var c23 = i3
        var c30 = i0
        var c31 = i1
        var c32 = i2
        var c33 = i3
        var c40 = i0
        var c41 = i1
        var c42 = i2
        var c43 = i3
        var c50 = i0
        var c51 = i1
        var c52 = i2
        var c53 = i3
        for kk in 0..<kc {
            let p = bv + kk * stride
            let b0 = p.load(as: GemmVec.self)
            let b1 = p.load(fromByteOffset: 64, as: GemmVec.self)
            let b2 = p.load(fromByteOffset: 128, as: GemmVec.self)
            let b3 = p.load(fromByteOffset: 192, as: GemmVec.self)
            var s = a0[kk]
            c00.addProduct(s, b0)
            c01.addProduct(s, b1)
            c02.addProduct(s, b2)
            c03.addProduct(s, b3)
            s = a1[kk]
            c10.addProduct(s, b0)
            c11.addProduct(s, b1)
            c12.addProduct(s, b2)
            c13.addProduct(s, b3)
            s = a2[kk]
            c20.addProduct(s, b0)
            c21.addProduct(s, b1)
            c22.addProduct(s, b2)
            c23.addProduct(s, b3)
            s = a3[kk]
            c30.addProduct(s, b0)
            c31.addProduct(s, b1)
            c32.addProduct(s, b2)
            c33.addProduct(s, b3)
            s = a4[kk]
            c40.addProduct(s, b0)
            c41.addProduct(s, b1)
            c42.addProduct(s, b2)
            c43.addProduct(s, b3)
            s = a5[kk]
            c50.addProduct(s, b0)
            c51.addProduct(s, b1)
            c52.addProduct(s, b2)
            c53.addProduct(s, b3)
        }
        // Rows are stored straight from registers; only ragged tiles go through a small stack buffer.
        let rowPtrs = (c, c + ldc, c + 2 * ldc, c + 3 * ldc, c + 4 * ldc, c + 5 * ldc)
        storeRow(rowPtrs.0, c00, c01, c02, c03, cols: cols, accumulate: accumulate)
        if rows > 1 { storeRow(rowPtrs.1, c10, c11, c12, c13, cols: cols, accumulate: accumulate) }
        if rows > 2 { storeRow(rowPtrs.2, c20, c21, c22, c23, cols: cols, accumulate: accumulate) }
        if rows > 3 { storeRow(rowPtrs.3, c30, c31, c32, c33, cols: cols, accumulate: accumulate) }
        if rows > 4 { storeRow(rowPtrs.4, c40, c41, c42, c43, cols: cols, accumulate: accumulate) }
        if rows > 5 { storeRow(rowPtrs.5, c50, c51, c52, c53, cols: cols, accumulate: accumulate) }
    #else
        let half = GemmVec.scalarCount * 4
        var i0 = GemmVec()
        var i1 = GemmVec()
        if let start {
            let s = UnsafeRawPointer(start)
            i0 = s.loadUnaligned(as: GemmVec.self)
            i1 = s.loadUnaligned(fromByteOffset: half, as: GemmVec.self)
        }
        var c00 = i0
        var c01 = i1
        var c10 = i0
        var c11 = i1
        var c20 = i0
        var c21 = i1
        var c30 = i0
        var c31 = i1
        var c40 = i0
        var c41 = i1
        var c50 = i0
        var c51 = i1
        for kk in 0..<kc {
            let p = bv + kk * stride
            let b0 = p.loadUnaligned(as: GemmVec.self)
            let b1 = p.loadUnaligned(fromByteOffset: half, as: GemmVec.self)
            var s = a0[kk]
            c00.addProduct(s, b0)
            c01.addProduct(s, b1)
            s = a1[kk]
            c10.addProduct(s, b0)
            c11.addProduct(s, b1)
            s = a2[kk]
            c20.addProduct(s, b0)
            c21.addProduct(s, b1)
            s = a3[kk]
            c30.addProduct(s, b0)
            c31.addProduct(s, b1)
            s = a4[kk]
            c40.addProduct(s, b0)
            c41.addProduct(s, b1)
            s = a5[kk]
            c50.addProduct(s, b0)
            c51.addProduct(s, b1)
        }
        storeRow(c, c00, c01, cols: cols, accumulate: accumulate)
        if rows > 1 { storeRow(c + ldc, c10, c11, cols: cols, accumulate: accumulate) }
        if rows > 2 { storeRow(c + 2 * ldc, c20, c21, cols: cols, accumulate: accumulate) }
        if rows > 3 { storeRow(c + 3 * ldc, c30, c31, cols: cols, accumulate: accumulate) }
        if rows > 4 { storeRow(c + 4 * ldc, c40, c41, cols: cols, accumulate: accumulate) }
        if rows > 5 { storeRow(c + 5 * ldc, c50, c51, cols: cols, accumulate: accumulate) }
    #endif
}

/// Writes one row of the register tile: NR values as 4 (AVX-512) or 2 vectors, only `cols` of them.
@inline(__always)
private func storeRow(
    _ dst: UnsafeMutablePointer<Float>, _ v0: GemmVec, _ v1: GemmVec, _ v2: GemmVec, _ v3: GemmVec,
    cols: Int, accumulate: Bool
) {
    guard cols == 4 * GemmVec.scalarCount else {
        return storePartialRow(dst, [v0, v1, v2, v3], cols: cols, accumulate: accumulate)
    }
    storeVector(dst, 0, v0, accumulate: accumulate)
    storeVector(dst, 1, v1, accumulate: accumulate)
    storeVector(dst, 2, v2, accumulate: accumulate)
    storeVector(dst, 3, v3, accumulate: accumulate)
}

@inline(__always)
private func storeRow(_ dst: UnsafeMutablePointer<Float>, _ v0: GemmVec, _ v1: GemmVec, cols: Int, accumulate: Bool) {
    guard cols == 2 * GemmVec.scalarCount else {
        return storePartialRow(dst, [v0, v1], cols: cols, accumulate: accumulate)
    }
    storeVector(dst, 0, v0, accumulate: accumulate)
    storeVector(dst, 1, v1, accumulate: accumulate)
}

/// Vector `i` of a row, stored or added onto what is there.
@inline(__always)
private func storeVector(_ dst: UnsafeMutablePointer<Float>, _ i: Int, _ v: GemmVec, accumulate: Bool) {
    let raw = UnsafeMutableRawPointer(dst)
    let offset = i * 4 * GemmVec.scalarCount
    if accumulate {
        raw.storeBytes(
            of: raw.loadUnaligned(fromByteOffset: offset, as: GemmVec.self) + v, toByteOffset: offset, as: GemmVec.self)
    } else {
        raw.storeBytes(of: v, toByteOffset: offset, as: GemmVec.self)
    }
}

/// The ragged right edge of a tile: only the first `cols` values.
private func storePartialRow(_ dst: UnsafeMutablePointer<Float>, _ vectors: [GemmVec], cols: Int, accumulate: Bool) {
    let w = GemmVec.scalarCount
    for (i, v) in vectors.enumerated() where i * w < cols {
        for j in 0..<min(w, cols - i * w) {
            if accumulate { dst[i * w + j] += v[j] } else { dst[i * w + j] = v[j] }
        }
    }
}

// MARK: gathering sub-matrices of packed weights (subnetwork plans)

extension PackedLinear {
    /// A new PackedLinear made of the given output rows (in order) of this one, with their biases.
    /// Copied panel to panel (a subnetwork plan is compiled in milliseconds): a destination panel whose 64
    /// rows are one whole source panel — a kept head of size 64 — is a single block copy, others are
    /// gathered lane by lane.
    public func gatherRows(_ rows: [Int]) -> PackedLinear {
        precondition(!rows.isEmpty && rows.allSatisfy { $0 >= 0 && $0 < n })
        let newN = rows.count
        let newPanels = (newN + gemmNR - 1) / gemmNR
        let dst = allocateFloats(newPanels * k * gemmNR)
        for p in 0..<newPanels {
            let out = dst + p * k * gemmNR
            let lanes = min(gemmNR, newN - p * gemmNR)
            let first = rows[p * gemmNR]
            if lanes == gemmNR && first % gemmNR == 0
                && (0..<gemmNR).allSatisfy({ rows[p * gemmNR + $0] == first + $0 })
            {
                out.update(from: panels + (first / gemmNR) * k * gemmNR, count: k * gemmNR)
                continue
            }
            for kk in 0..<k {
                let o = out + kk * gemmNR
                for j in 0..<lanes {
                    let r = rows[p * gemmNR + j]
                    o[j] = panels[(r / gemmNR) * k * gemmNR + kk * gemmNR + r % gemmNR]
                }
                for j in lanes..<gemmNR { o[j] = 0 }
            }
        }
        return PackedLinear(packedPanels: dst, bias: bias.map { b in rows.map { b[$0] } }, n: newN, k: k)
    }

    /// A new PackedLinear made of the given input columns (in order), keeping all output rows; the bias
    /// is `bias` if given, else this one's. Each (panel, column) is one contiguous copy of NR values.
    public func gatherColumns(_ cols: [Int], bias newBias: [Float]? = nil) -> PackedLinear {
        precondition(!cols.isEmpty && cols.allSatisfy { $0 >= 0 && $0 < k })
        let newK = cols.count
        let dst = allocateFloats(panelCount * newK * gemmNR)
        for p in 0..<panelCount {
            let src = panels + p * k * gemmNR
            let out = dst + p * newK * gemmNR
            for (j, c) in cols.enumerated() { (out + j * gemmNR).update(from: src + c * gemmNR, count: gemmNR) }
        }
        return PackedLinear(packedPanels: dst, bias: newBias ?? biasArray, n: n, k: newK)
    }

    /// out[r] += Σ_i W[r][cols[i]] · values[i] in Double, i ascending, for every output row r (a pruned
    /// head's constant contribution W_O·avg folded into a bias). Reads the panels in order.
    public func accumulateColumns(_ cols: [Int], times values: [Double], into out: inout [Double]) {
        precondition(cols.count == values.count && out.count == n)
        for (c, a) in zip(cols, values) {
            for p in 0..<panelCount {
                let src = panels + p * k * gemmNR + c * gemmNR
                for j in 0..<min(gemmNR, n - p * gemmNR) { out[p * gemmNR + j] += Double(src[j]) * a }
            }
        }
    }

    /// The weight as a plain row-major [n, k] array (circuits, tests, export).
    public func unpacked() -> [Float] {
        var out = [Float](repeating: 0, count: n * k)
        for r in 0..<n {
            let src = panels + (r / gemmNR) * k * gemmNR + r % gemmNR
            for kk in 0..<k { out[r * k + kk] = src[kk * gemmNR] }
        }
        return out
    }

    public var biasArray: [Float]? { bias.map { Array(UnsafeBufferPointer(start: $0, count: n)) } }
}
