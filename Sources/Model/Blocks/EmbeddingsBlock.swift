// BERT's embeddings: x[t] = LayerNorm((word[id_t] + token_type[tt_t]) + position[p_t]), p counted from each
// sequence's start — the sum in Hugging Face's order. Inference (`BertModel.embed`) and fine-tuning share
// the sum; fine-tuning also scatters the gradient back into the three tables.
import Kernels

/// The three tables as pointers: word [V, D], token type [T, D], position [P, D].
package struct EmbeddingTables {
    package let word, tokenType, position: UnsafePointer<Float>
    package init(word: UnsafePointer<Float>, tokenType: UnsafePointer<Float>, position: UnsafePointer<Float>) {
        (self.word, self.tokenType, self.position) = (word, tokenType, position)
    }
}

/// e [N, D] ← word[id] + token_type[tt] + position[p] for every token of the batch; `then` sees each sequence's
/// rows as soon as they are summed (on the same task).
package func embeddingSum(
    _ batch: TokenBatch, _ tables: EmbeddingTables, hidden D: Int, into e: UnsafeMutablePointer<Float>,
    pool: ThreadPool, then: ((Range<Int>) -> Void)? = nil
) {
    let ea = UInt(bitPattern: e)
    pool.parallelFor(batch.count) { s in
        let e = UnsafeMutablePointer<Float>(bitPattern: ea)!
        for t in batch.offsets[s]..<batch.offsets[s + 1] {
            let row = e + t * D
            let w = tables.word + Int(batch.inputIds[t]) * D
            let ty = tables.tokenType + Int(batch.tokenTypeIds[t]) * D
            let p = tables.position + (t - batch.offsets[s]) * D
            for c in 0..<D { row[c] = (w[c] + ty[c]) + p[c] }
        }
        then?(batch.offsets[s]..<batch.offsets[s + 1])
    }
}

/// x [N, D] ← LayerNorm(word[id] + token_type[tt] + position[p]) for a validated batch. With `sum`, the sum is
/// kept there and the LayerNorm's statistics in `statistics` (fine-tuning's backward); otherwise it is
/// normalised in place.
package func embeddingsBlockForward(
    _ batch: TokenBatch, _ tables: EmbeddingTables, _ norm: LayerNormWeights, hidden D: Int, eps: Float,
    into x: UnsafeMutablePointer<Float>, sum: UnsafeMutablePointer<Float>?, statistics: LayerNormStatistics?,
    pool: ThreadPool
) {
    if sum == nil && statistics == nil {
        // Nothing kept: each sequence's rows are summed then normalised while in cache, one sweep over x.
        let chain = LayerNormChain([norm.step(adding: nil, eps: eps)], out: x, ld: D)
        embeddingSum(batch, tables, hidden: D, into: x, pool: pool) { rows in
            chain.apply(x + rows.lowerBound * D, rows: rows.count, ld: D, index: rows.lowerBound, count: D)
        }
        return
    }
    let e = sum ?? x
    embeddingSum(batch, tables, hidden: D, into: e, pool: pool)
    layerNorm(
        e, x, rows: batch.tokenCount, count: D, gamma: norm.gamma, beta: norm.beta, eps: eps, statistics: statistics,
        pool: pool)
}

/// Adds de [N, D] (the gradient with respect to the sum) into the rows of the tables' gradients that the
/// batch used. Sequential: tokens of a batch share rows.
package func embeddingSumBackward(
    _ de: UnsafePointer<Float>, _ batch: TokenBatch, hidden D: Int, gradients g: EmbeddingTables
) {
    let word = UnsafeMutablePointer(mutating: g.word)
    let type = UnsafeMutablePointer(mutating: g.tokenType)
    let position = UnsafeMutablePointer(mutating: g.position)
    for s in 0..<batch.count {
        for t in batch.offsets[s]..<batch.offsets[s + 1] {
            addVectors(word + Int(batch.inputIds[t]) * D, de + t * D, count: D)
            addVectors(position + (t - batch.offsets[s]) * D, de + t * D, count: D)
            addVectors(type + Int(batch.tokenTypeIds[t]) * D, de + t * D, count: D)
        }
    }
}
