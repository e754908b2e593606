// LayerNorms run back to back on each row while it is in cache.
//
// A post-LN layer whose MLP is pruned computes y = LayerNorm₂(LayerNorm₁(g) + c), c a constant row: two sweeps
// over [rows, D] in memory, with nothing between them that needs the whole matrix. And W_O's product, when its
// tiles span whole rows, has each row of g in cache the moment it is finished. A chain applies its steps to one row
// at a time, each step the same `layerNormRow` on the same values as a separate `layerNorm` pass, so a chained
// pass writes the same bits with one or two sweeps over memory fewer. Chains serve passes that keep nothing: no
// statistics, no per-row scales (those use `layerNorm`).

/// One LayerNorm of a chain: `adding` (a row [count], or nil) is added to the row first.
public struct LayerNormStep {
    public let adding: UnsafePointer<Float>?
    public let gamma, beta: UnsafePointer<Float>
    public let eps: Float
    public init(adding: UnsafePointer<Float>?, gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>, eps: Float) {
        (self.adding, self.gamma, self.beta, self.eps) = (adding, gamma, beta, eps)
    }
}

/// One or two LayerNorms over rows of `count` values; the last step writes row r to out + r·ld.
public struct LayerNormChain {
    public let first: LayerNormStep
    public let second: LayerNormStep?
    public let out: UnsafeMutablePointer<Float>
    public let ld: Int
    public init(_ first: LayerNormStep, then second: LayerNormStep? = nil, out: UnsafeMutablePointer<Float>, ld: Int) {
        (self.first, self.second, self.out, self.ld) = (first, second, out, ld)
    }

    /// Runs the chain on `row` (row index r of the output), which it may overwrite: the first step in place when
    /// a second follows, the last into the output row (which may be `row` itself).
    @inline(__always)
    public func apply(_ row: UnsafeMutablePointer<Float>, index r: Int, count: Int) {
        let dest = out + r * ld
        step(first, row, second == nil ? dest : row, count: count)
        if let second { step(second, row, dest, count: count) }
    }

    @inline(__always)
    private func step(
        _ s: LayerNormStep, _ row: UnsafeMutablePointer<Float>, _ to: UnsafeMutablePointer<Float>, count: Int
    ) {
        if let adding = s.adding { addVectors(row, adding, count: count) }
        layerNormRow(row, to, count: count, gamma: s.gamma, beta: s.beta, eps: s.eps)
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
        for r in (c * chunk)..<min(rows, (c + 1) * chunk) {
            let row = chain.out + r * chain.ld
            if UnsafePointer(row) != x + r * count { row.update(from: x + r * count, count: count) }
            chain.apply(row, index: r, count: count)
        }
    }
}
