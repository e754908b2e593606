// One attention head run alone on a layer input: its query, key and value rows [N, 3·d] and its context
// [N, d] — exactly what the whole layer computes for that head (the same GEMM on the head's rows of the
// packed QKV weight, the same attention kernel with one head). Circuits' path analyses (which later heads
// read from the core) drive this block; inference never needs it.
import Kernels

extension BertModel {
    /// Head `head` of layer `layer`'s rows of the packed QKV weight: [q rows, k rows, v rows], 3·d outputs.
    public func headQKVWeights(layer: Int, head: Int) -> PackedLinear {
        let d = headDim
        let D = hidden
        let rows = Array((head * d)..<((head + 1) * d))
        return layers[layer].qkv.gatherRows(rows + rows.map { $0 + D } + rows.map { $0 + 2 * D })
    }

    /// qkv [N, 3·d] ← x [N, D] · Wᵀ + b with `weights` from `headQKVWeights`; and, when `context` is given,
    /// context [N, d] ← softmax(q kᵀ / √d) v per sequence of `batch`.
    public func headForward(
        _ x: UnsafePointer<Float>, weights: PackedLinear, batch: TokenBatch, qkv: UnsafeMutablePointer<Float>,
        context: UnsafeMutablePointer<Float>?, pool: ThreadPool = .shared
    ) {
        let d = headDim
        let N = batch.tokenCount
        gemm(x, rows: N, lda: hidden, weights, out: qkv, ldc: 3 * d, epilogue: .bias, pool: pool)
        if let context { headContext(qkv: qkv, batch: batch, into: context, pool: pool) }
    }

    /// context [N, d] ← softmax(q kᵀ / √d) v per sequence of `batch`, from one head's qkv [N, 3·d] (path patching
    /// mixes its q, k and v from two runs before this).
    public func headContext(
        qkv: UnsafePointer<Float>, batch: TokenBatch, into context: UnsafeMutablePointer<Float>,
        pool: ThreadPool = .shared
    ) {
        let d = headDim
        attention(
            qkv: qkv, ldqkv: 3 * d, heads: 1, headDim: d, offsets: batch.offsets, ctx: context, ldctx: d, pool: pool)
    }
}
