// Attention patterns: every head's softmax(QKᵀ/√d) of every layer, for looking at what heads attend to
// (`hcore circuits attention`). A driver over the training-mode layer blocks, which keep the probabilities
// for their backward; dropout off, the full model (no masks).
import Kernels

extension BertModel {
    /// Per layer, the probabilities of every sequence and head: sequence s, head h, query i, key j at
    /// attentionProbOffsets(offsets, heads)[s] + (h·T_s + i)·T_s + j.
    public func attentionPatterns(_ batch: TokenBatch, pool: ThreadPool = .shared) throws -> [[Float]] {
        try validate(batch)
        let N = batch.tokenCount
        let D = hidden
        let I = config.intermediateSize
        let L = layerCount
        let B = batch.count
        let weights = backwardWeights
        let shape = BlockShape(
            offsets: batch.offsets, hidden: D, inner: I, heads: headCount, headDim: headDim, eps: config.layerNormEps)
        let arena = takeArena()
        defer { returnArena(arena) }
        let probCount = attentionProbOffsets(offsets: batch.offsets, heads: headCount).last!
        let cache = LayerCache(
            arena: arena, tokens: N, hidden: D, inner: I, probCount: probCount, geluOutput: nil, dropAttention: nil,
            dropMLP: nil)
        let x = arena.take(N * D)
        let xCLS = arena.take(B * D)
        try embeddings(batch, into: x, pool: pool)
        var out: [[Float]] = []
        for l in 0..<L {
            encoderLayerForward(
                x, layer: l, weights.layers[l], cache, shape: shape, masks: nil, compact: false, xCLS: xCLS, pool: pool)
            out.append(Array(UnsafeBufferPointer(start: cache.probs, count: probCount)))
        }
        return out
    }
}
