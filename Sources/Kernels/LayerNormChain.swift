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
    /// the output row (which may be the row itself).
    @inline(__always)
    public func apply(
        _ first: UnsafeMutablePointer<Float>, rows: Int, ld: Int, index r0: Int, count: Int,
        adding: UnsafePointer<Float>? = nil, addingLD: Int = 0
    ) {
        steps.withUnsafeBufferPointer { steps in
            let last = steps.count - 1
            for i in 0..<rows {
                let row = first + i * ld
                if let adding { addVectors(row, adding + i * addingLD, count: count) }
                for j in 0...last {
                    let s = steps[j]
                    if let adding = s.adding { addVectors(row, adding, count: count) }
                    let to = j == last ? out + (r0 + i) * self.ld : row
                    layerNormRow(row, to, count: count, gamma: s.gamma, beta: s.beta, eps: s.eps)
                }
            }
        }
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
