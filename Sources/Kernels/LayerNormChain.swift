// LayerNorms run back to back on each row while it is in cache.
//
// A post-LN layer whose MLP is pruned computes y = LayerNorm₂(LayerNorm₁(g) + c), c a constant row: two sweeps
// over [rows, D] in memory, with nothing between them that needs the whole matrix; a following layer with no head
// and no MLP is two more such steps. And W_O's product, when its tiles span whole rows, has each row of g in cache
// the moment it is finished. A chain applies its steps to one row at a time, each step the same `layerNormRow` on
// the same values as a separate `layerNorm` pass, so a chained pass writes the same bits with sweeps over memory
// fewer. Chains serve passes that keep nothing: no statistics, no per-row scales (those use `layerNorm`).

/// One LayerNorm of a chain: `adding` (a row [count], or nil) is added to the row first.
public struct LayerNormStep {
    public let adding: UnsafePointer<Float>?
    public let gamma, beta: UnsafePointer<Float>
    public let eps: Float
    public init(adding: UnsafePointer<Float>?, gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>, eps: Float) {
        (self.adding, self.gamma, self.beta, self.eps) = (adding, gamma, beta, eps)
    }
}

/// LayerNorms applied one after another to each row; the last step writes row r to out + r·ld.
public struct LayerNormChain {
    public let steps: [LayerNormStep]
    public let out: UnsafeMutablePointer<Float>
    public let ld: Int
    public init(_ steps: [LayerNormStep], out: UnsafeMutablePointer<Float>, ld: Int) {
        precondition(!steps.isEmpty, "a LayerNorm chain without a step")
        (self.steps, self.out, self.ld) = (steps, out, ld)
    }

    /// Runs the chain on `rows` rows from `first` (row stride `ld`; output rows from r0), which it may overwrite:
    /// `adding` (row stride `addingLD`) added to each row first, every step but the last in place, the last into
    /// the output row (which may be the row itself). Rows go two at a time (`layerNormRowPair`): a LayerNorm of a
    /// row in cache waits on its own chains of adds, and two rows' chains interleave.
    @inline(__always)
    public func apply(
        _ first: UnsafeMutablePointer<Float>, rows: Int, ld: Int, index r0: Int, count: Int,
        adding: UnsafePointer<Float>? = nil, addingLD: Int = 0
    ) {
        steps.withUnsafeBufferPointer { steps in
            let last = steps.count - 1
            var i = 0
            while i < rows {
                let (a, b) = (first + i * ld, first + min(i + 1, rows - 1) * ld)
                let pair = i + 1 < rows
                if let adding {
                    addVectors(a, adding + i * addingLD, count: count)
                    if pair { addVectors(b, adding + (i + 1) * addingLD, count: count) }
                }
                for j in 0...last {
                    let s = steps[j]
                    if let adding = s.adding {
                        addVectors(a, adding, count: count)
                        if pair { addVectors(b, adding, count: count) }
                    }
                    let (toA, toB) = j == last ? (out + (r0 + i) * self.ld, out + (r0 + i + 1) * self.ld) : (a, b)
                    if pair {
                        layerNormRowPair(a, toA, b, toB, count: count, gamma: s.gamma, beta: s.beta, eps: s.eps)
                    } else {
                        layerNormRow(a, toA, count: count, gamma: s.gamma, beta: s.beta, eps: s.eps)
                    }
                }
                i += 2
            }
        }
    }
}

/// `layerNormRow` (no fixed scale) of two rows at once: each row's sums in the same order as alone, so the same
/// bits, with the two rows' dependent chains of adds interleaved so that neither waits on its own latency.
@inline(__always)
public func layerNormRowPair(
    _ x0: UnsafePointer<Float>, _ out0: UnsafeMutablePointer<Float>, _ x1: UnsafePointer<Float>,
    _ out1: UnsafeMutablePointer<Float>, count: Int, gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>,
    eps: Float
) {
    let (r0, r1) = (UnsafeRawPointer(x0), UnsafeRawPointer(x1))
    let whole = count / 16 * 16
    var (a0, a1) = (Vec16(), Vec16())
    for i in stride(from: 0, to: whole, by: 16) {
        a0 += r0.loadUnaligned(fromByteOffset: i * 4, as: Vec16.self)
        a1 += r1.loadUnaligned(fromByteOffset: i * 4, as: Vec16.self)
    }
    var (s0, s1) = (a0.sum(), a1.sum())
    for j in whole..<count {
        s0 += x0[j]
        s1 += x1[j]
    }
    let (m0, m1) = (s0 / Float(count), s1 / Float(count))
    var (q0, q1) = (Vec16(), Vec16())
    for i in stride(from: 0, to: whole, by: 16) {
        let d0 = r0.loadUnaligned(fromByteOffset: i * 4, as: Vec16.self) - m0
        let d1 = r1.loadUnaligned(fromByteOffset: i * 4, as: Vec16.self) - m1
        q0.addProduct(d0, d0)
        q1.addProduct(d1, d1)
    }
    var (v0, v1) = (q0.sum(), q1.sum())
    for j in whole..<count {
        let (d0, d1) = (x0[j] - m0, x1[j] - m1)
        v0 += d0 * d0
        v1 += d1 * d1
    }
    let rstd0 = 1 / (v0 / Float(count) + eps).squareRoot()
    let rstd1 = 1 / (v1 / Float(count) + eps).squareRoot()
    let (o0, o1) = (UnsafeMutableRawPointer(out0), UnsafeMutableRawPointer(out1))
    let (g, b) = (UnsafeRawPointer(gamma), UnsafeRawPointer(beta))
    for i in stride(from: 0, to: whole, by: 16) {
        let gv = g.loadUnaligned(fromByteOffset: i * 4, as: Vec16.self)
        var y0 = b.loadUnaligned(fromByteOffset: i * 4, as: Vec16.self)
        var y1 = y0
        y0.addProduct((r0.loadUnaligned(fromByteOffset: i * 4, as: Vec16.self) - m0) * rstd0, gv)
        y1.addProduct((r1.loadUnaligned(fromByteOffset: i * 4, as: Vec16.self) - m1) * rstd1, gv)
        o0.storeBytes(of: y0, toByteOffset: i * 4, as: Vec16.self)
        o1.storeBytes(of: y1, toByteOffset: i * 4, as: Vec16.self)
    }
    for j in whole..<count {
        out0[j] = (x0[j] - m0) * rstd0 * gamma[j] + beta[j]
        out1[j] = (x1[j] - m1) * rstd1 * gamma[j] + beta[j]
    }
}

/// The chain over x [rows, count] (row stride `count`), rows spread over the pool. x is read, never written,
/// unless it is the chain's output.
public func layerNorm(
    _ x: UnsafePointer<Float>, rows: Int, count: Int, chain: LayerNormChain, pool: ThreadPool = .shared
) {
    let chunk = 64
    precondition(chain.ld >= count, "a LayerNorm chain's output rows overlap")
    pool.parallelFor((rows + chunk - 1) / chunk) { c in
        let (r0, r1) = (c * chunk, min(rows, (c + 1) * chunk))
        for r in r0..<r1 {
            let row = chain.out + r * chain.ld
            if UnsafePointer(row) != x + r * count { row.update(from: x + r * count, count: count) }
        }
        chain.apply(chain.out + r0 * chain.ld, rows: r1 - r0, ld: chain.ld, index: r0, count: count)
    }
}
