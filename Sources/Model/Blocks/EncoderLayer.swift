// One post-LN encoder layer, forward and backward side by side: the only place its composition is written.
// Inference, mask gradients, fine-tuning, path patching and attention dumps all run it, through `BertPass`.
//
//   qkv = x W_qkvᵀ + b                                   [N, 3w]   w = kept·d (a plan's kept heads; all: D)
//   ctx = Dropout(softmax(Q Kᵀ/√d)) V  per (seq, head)   [N, w]    observers see, and may edit, ctx here
//   ĉ   = mask(ctx)                                      [R, w]    soft head masks (SoftMasks)
//   g   = Dropout(ĉ W_Oᵀ + b_O) + x                      [R, D]    no head kept: x + the plan's constant
//   a   = LayerNorm₁(g)                                  [R, D]
//   u   = a W_iᵀ + b_i;  gu = gelu(u)                    [R, I]
//   m   = Dropout(gu W_2ᵀ + b_2)                         [R, D]    MLP pruned by the plan: its constant
//   h   = mask(m) + a                                    [R, D]
//   y   = LayerNorm₂(h)                                  [R, D]
// R = N, or B when only the [CLS] rows of the layer's output are needed (the last layer, for the classifier):
// `.cls` computes attention for every row and gathers the [CLS] rows after it (what a backward needs);
// `.firstQuery` forms the [CLS] rows' context without any key or value (inference; Kernels/FirstQueryAttention).
// Inference keeps nothing, so its buffers alias (g is a, gu is u, h is m); a pass that feeds a backward keeps
// each of them apart. Both run the same kernels in the same order, so with masks at 1 and no dropout the two
// modes compute the same bits.
import Kernels

/// Which rows of a layer run after attention.
public enum LayerRows: Sendable, Equatable {
    /// Every token's row.
    case all
    /// The [CLS] rows only, gathered after attention over every row.
    case cls
    /// The [CLS] rows only, their context formed without keys or values (no backward, no observer).
    case firstQuery
}

/// The model's sizes as the blocks read them.
package struct BlockShape: Sendable {
    package let hidden: Int, inner: Int, heads: Int, headDim: Int, eps: Float
    package init(hidden: Int, inner: Int, heads: Int, headDim: Int, eps: Float) {
        (self.hidden, self.inner, self.heads, self.headDim, self.eps) = (hidden, inner, heads, headDim, eps)
    }
}

/// What every layer of one pass shares: the batch, the model's sizes, soft masks, hooks, the [CLS]-row scratch.
package struct PassContext {
    package let batch: TokenBatch
    package let shape: BlockShape
    package let masks: SoftMasks?
    package let observer: ForwardObserver?
    package let xCLS: UnsafeMutablePointer<Float>  // [B, D]
    package let arena: ScratchArena
    package let pool: ThreadPool
    let timer = StageTimer.shared

    package var tokens: Int { batch.tokenCount }
    package var sequences: Int { batch.count }
}

/// The named activations of one layer. Optional ones exist only in a pass that needs them; in inference
/// the pairs (g, a), (u, gu) and (m, h) and (ctx, ctxMasked) are the same buffer.
package struct LayerActivations {
    /// [N, D] the layer's input (the input of W_qkv's weight gradient).
    package let xIn: UnsafeMutablePointer<Float>?
    /// [N, 3D]; in `.firstQuery` mode its first B rows hold the [CLS] queries.
    package let qkv: UnsafeMutablePointer<Float>
    /// Σ_s H·T_s² attention probabilities (Kernels' `attentionProbOffsets` layout).
    package let probs: UnsafeMutablePointer<Float>?
    /// [N, D] context before masks; its first B rows hold the [CLS] rows' when R = B.
    package let ctx, ctxMasked: UnsafeMutablePointer<Float>
    /// [N, D] the residual sum before LayerNorm₁, and its output.
    package let g, a: UnsafeMutablePointer<Float>
    /// [N, I] the intermediate pre-activation (gelu'(u) after a keeping forward), and gelu(u).
    package let u, gu: UnsafeMutablePointer<Float>
    /// [N, D] the MLP output (after dropout, before its mask), and the sum before LayerNorm₂.
    package let m, h: UnsafeMutablePointer<Float>
    /// Means and 1/σ [N] of the two LayerNorms, for their backward.
    package let gStatistics, hStatistics: LayerNormStatistics?
    /// Inverted-dropout multipliers: attention output and MLP output [N, D]; the attention probabilities' keep bits
    /// (as `probs`).
    package let dropAttention, dropMLP: UnsafeMutablePointer<Float>?
    package let dropProbs: DropoutBits?

    /// Whether this pass keeps what a backward reads.
    package var keepsForBackward: Bool { gStatistics != nil }

    /// Buffers of a pass that keeps nothing (inference); with `probabilities` also the attention probabilities.
    package init(inference arena: ScratchArena, tokens N: Int, shape s: BlockShape, probabilities: Int? = nil) {
        let D = s.hidden
        qkv = arena.take(N * 3 * D)
        ctx = arena.take(N * D)
        a = arena.take(N * D)
        u = arena.take(N * s.inner)
        m = arena.take(N * D)
        (ctxMasked, g, gu, h) = (ctx, a, u, m)
        probs = probabilities.map { arena.take($0) }
        (xIn, gStatistics, hStatistics) = (nil, nil, nil)
        (dropAttention, dropMLP, dropProbs) = (nil, nil, nil)
    }

    /// Buffers of a pass whose backward follows. `weightGradients`: also the inputs of every weight gradient.
    /// `geluOutput`: a buffer [N, I] shared between layers when nothing reads gelu(u) after the forward.
    package init(
        training arena: ScratchArena, tokens N: Int, shape s: BlockShape, probabilities: Int,
        weightGradients: Bool, geluOutput: UnsafeMutablePointer<Float>?, dropout: LayerDropout
    ) {
        let D = s.hidden
        let I = s.inner
        xIn = weightGradients ? arena.take(N * D) : nil
        qkv = arena.take(N * 3 * D)
        probs = arena.take(probabilities)
        ctx = arena.take(N * D)
        ctxMasked = arena.take(N * D)
        g = arena.take(N * D)
        gStatistics = LayerNormStatistics(mean: arena.take(N), rstd: arena.take(N))
        a = arena.take(N * D)
        u = arena.take(N * I)
        gu = geluOutput ?? arena.take(N * I)
        m = arena.take(N * D)
        h = arena.take(N * D)
        hStatistics = LayerNormStatistics(mean: arena.take(N), rstd: arena.take(N))
        (dropAttention, dropMLP, dropProbs) = (dropout.attention, dropout.mlp, dropout.probabilities)
    }
}

/// One layer's dropout multipliers, the probabilities' as keep bits (nil: off).
package struct LayerDropout {
    package let attention, mlp: UnsafeMutablePointer<Float>?
    package let probabilities: DropoutBits?
}

/// Forward of layer `l` on x [N, D] in place (see the file comment). Layer 0 on the embedding output computes
/// Q/K/V once per distinct (token, position, type) row when `sharedEmbeddingRows` (bit for bit the same). `tail`:
/// the LayerNorm steps of following layers that compute nothing else (`rowwiseSteps`), run in this layer's last
/// sweep over each row (a pass that keeps nothing and has no observer).
package func encoderLayerForward(
    _ x: UnsafeMutablePointer<Float>, layer l: Int, _ w: BertLayer, plan lp: LayerPlan, _ c: LayerActivations,
    _ p: PassContext, rows: LayerRows, sharedEmbeddingRows: Bool, tail: [LayerNormStep] = []
) {
    let D = p.shape.hidden
    let out = rows == .all ? x : p.xCLS
    c.xIn?.update(from: x, count: p.tokens * D)
    if rows != .all { gatherCLS(x, into: p.xCLS, offsets: p.batch.offsets, width: D) }
    if rows == .cls {
        // The dropout multipliers of the rows that run after attention.
        for drop in [c.dropAttention, c.dropMLP] {
            if let drop { gatherCLS(drop, into: drop, offsets: p.batch.offsets, width: D) }
        }
    }
    // A pass that keeps nothing and has no observer runs a pruned MLP's LayerNorm₂ (and the tail) in LayerNorm₁'s
    // sweep over each row (Kernels/LayerNormChain): a is never stored, the same bits.
    let chains = chainsLayerNorms(c, observer: p.observer)
    precondition(chains || tail.isEmpty, "a LayerNorm chain in a pass that keeps or is observed")
    if chains, let constant = lp.mlpConstantRow {
        let steps = [w.outputLayerNorm.step(adding: constant, eps: p.shape.eps)] + tail
        attentionBlockForward(
            x, layer: l, w, plan: lp, c, p, rows: rows, sharedEmbeddingRows: sharedEmbeddingRows, then: steps,
            into: out)
    } else {
        attentionBlockForward(x, layer: l, w, plan: lp, c, p, rows: rows, sharedEmbeddingRows: sharedEmbeddingRows)
        feedForwardBlockForward(
            layer: l, w, plan: lp, c, p, rows: rows == .all ? p.tokens : p.sequences, into: out, then: tail)
    }
    if rows != .all { scatterCLS(p.xCLS, into: x, offsets: p.batch.offsets, width: D) }
}

/// Whether a pass may run a layer's LayerNorms as chains: it keeps nothing for a backward and nothing observes it.
package func chainsLayerNorms(_ c: LayerActivations, observer: ForwardObserver?) -> Bool {
    !c.keepsForBackward && observer == nil
}

/// The LayerNorm steps that are all a layer with no head and a pruned MLP computes, row by row —
/// y = LayerNorm₂(LayerNorm₁(x + attention constant) + MLP constant) — or nil for any other layer.
package func rowwiseSteps(_ w: BertLayer, plan lp: LayerPlan, eps: Float) -> [LayerNormStep]? {
    guard lp.attentionOutput == nil || lp.keptHeads.isEmpty, let mlp = lp.mlpConstantRow else { return nil }
    return [
        w.attentionLayerNorm.step(adding: lp.attentionConstantRow, eps: eps),
        w.outputLayerNorm.step(adding: mlp, eps: eps),
    ]
}

/// a [R, D] ← LayerNorm₁(x + Dropout(mask(attention(x)) W_Oᵀ + b_O)) over the plan's kept heads.
/// `then`: LayerNorm steps run on each row of a in the same sweep, into `out` [R, D] (a pass that keeps nothing,
/// no scales).
func attentionBlockForward(
    _ x: UnsafeMutablePointer<Float>, layer l: Int, _ w: BertLayer, plan lp: LayerPlan, _ c: LayerActivations,
    _ p: PassContext, rows: LayerRows, sharedEmbeddingRows: Bool, then: [LayerNormStep] = [],
    into out: UnsafeMutablePointer<Float>? = nil
) {
    let (N, D, eps) = (p.tokens, p.shape.hidden, p.shape.eps)
    let R = rows == .all ? N : p.sequences
    let xr = rows == .all ? x : p.xCLS
    let scales = p.observer?.layerNormScales(layer: l, site: 0, tokens: R)
    let (gamma, beta) = (w.attentionLayerNorm.gamma, w.attentionLayerNorm.beta)
    // LayerNorm₁ and `then` as a chain, in a pass that keeps nothing and has no scales.
    func chain(adding: PinnedRow?) -> LayerNormChain? {
        guard !c.keepsForBackward, scales == nil else { return nil }
        return LayerNormChain([w.attentionLayerNorm.step(adding: adding, eps: eps)] + then, out: out ?? c.a, ld: D)
    }
    precondition(then.isEmpty || (!c.keepsForBackward && scales == nil), "a LayerNorm chain in a pass that keeps")
    guard let wo = lp.attentionOutput, !lp.keptHeads.isEmpty else {
        // No head kept: the block's output is x + a constant row (pruned heads' W_O·avg + b_O).
        if let ch = chain(adding: lp.attentionConstantRow) {
            p.timer.measure("layernorm") { layerNorm(xr, rows: R, count: D, chain: ch, pool: p.pool) }
            return
        }
        let constant = lp.attentionConstant ?? [Float](repeating: 0, count: D)
        if c.keepsForBackward {
            // g = Dropout(constant) + x, kept for LayerNorm₁'s backward.
            for r in 0..<R { (c.g + r * D).update(from: constant, count: D) }
            multiply(c.g, by: c.dropAttention, count: R * D)
            addVectors(c.g, xr, count: R * D)
            p.timer.measure("layernorm") {
                layerNorm(
                    c.g, c.a, rows: R, count: D, gamma: gamma, beta: beta, eps: eps, scales: scales,
                    statistics: c.gStatistics, pool: p.pool)
            }
            return
        }
        p.timer.measure("layernorm") {
            layerNorm(
                xr, c.a, rows: R, count: D, adding: constant, gamma: gamma, beta: beta, eps: eps, scales: scales,
                pool: p.pool)
        }
        return
    }
    let width = lp.keptHeads.count * p.shape.headDim
    attentionContext(x, layer: l, plan: lp, c, p, rows: rows, sharedEmbeddingRows: sharedEmbeddingRows)
    if c.ctxMasked != c.ctx { c.ctxMasked.update(from: c.ctx, count: R * width) }
    p.masks?.applyHeads(c.ctxMasked, rows: R, layer: l, heads: lp.keptHeads, headDim: p.shape.headDim)
    if c.dropAttention == nil, let ch = chain(adding: nil) {
        // g = ctx W_Oᵀ + b_O + x and its LayerNorm(s), each row while the product's tile holds it.
        p.timer.measure("out gemm") {
            gemm(
                c.ctxMasked, rows: R, lda: width, wo, out: c.g, ldc: D,
                epilogue: .biasResidualNormalized(xr, ld: D, ch), pool: p.pool)
        }
        return
    }
    p.timer.measure("out gemm") {
        if let drop = c.dropAttention {
            gemm(c.ctxMasked, rows: R, lda: width, wo, out: c.g, ldc: D, epilogue: .bias, pool: p.pool)
            let (g, x) = (c.g, UnsafePointer(xr))
            parallelRowBlocks(R, pool: p.pool) { rows in
                let (at, n) = (rows.lowerBound * D, rows.count * D)
                multiplyVectors(g + at, drop + at, count: n)
                addVectors(g + at, x + at, count: n)
            }
        } else {
            gemm(
                c.ctxMasked, rows: R, lda: width, wo, out: c.g, ldc: D, epilogue: .biasResidual(xr, ld: D), pool: p.pool
            )
        }
    }
    p.timer.measure("layernorm") {
        layerNorm(
            c.g, c.a, rows: R, count: D, gamma: gamma, beta: beta, eps: eps, scales: scales,
            statistics: c.gStatistics, pool: p.pool)
    }
}

/// ctx [R, w] of the kept heads: queries, keys and values of every row then attention, or for `.firstQuery` the
/// [CLS] rows' context alone. Observers see the whole layer's context (every head present, every row).
func attentionContext(
    _ x: UnsafeMutablePointer<Float>, layer l: Int, plan lp: LayerPlan, _ c: LayerActivations, _ p: PassContext,
    rows: LayerRows, sharedEmbeddingRows: Bool
) {
    let (N, D, d) = (p.tokens, p.shape.hidden, p.shape.headDim)
    let kept = lp.keptHeads.count
    let width = kept * d
    if rows == .firstQuery, let weights = lp.firstQueryWeights(features: D) {
        firstQueryContext(x, weights: weights, heads: kept, c, p)
        return
    }
    let wqkv = lp.qkv!
    if sharedEmbeddingRows, case (let unique, let source) = p.batch.distinctEmbeddingRows(), unique.count * 10 < N * 9 {
        distinctRowsQKV(x, weight: wqkv, unique: unique, source: source, into: c.qkv, p)
    } else {
        p.timer.measure("qkv gemm") {
            gemm(x, rows: N, lda: D, wqkv, out: c.qkv, ldc: 3 * width, epilogue: .bias, pool: p.pool)
        }
    }
    let offsets = p.batch.offsets
    p.timer.measure("attention") {
        attention(
            qkv: c.qkv, ldqkv: 3 * width, heads: kept, headDim: d, offsets: offsets, ctx: c.ctx, ldctx: width,
            probs: c.probs, dropout: c.dropProbs, slots: lp.probabilitySlots(heads: p.shape.heads),
            firstQueryOnly: clsQueriesOnly(rows, p), pool: p.pool)
    }
    if kept == p.shape.heads, let o = p.observer {
        if let probs = c.probs {
            o.attentionProbabilities(layer: l, probs, count: attentionProbOffsets(offsets: offsets, heads: kept).last!)
        }
        o.attentionContext(layer: l, c.ctx, tokens: N)
        o.editContext(layer: l, c.ctx, tokens: N)
    }
    if rows == .cls { gatherCLS(c.ctx, into: c.ctx, offsets: offsets, width: width) }
}

/// Whether a `.cls` layer's attention runs for the [CLS] queries alone: only their context rows continue, and in
/// the backward only they carry a gradient. Observers see every row's context, so with one every row runs.
func clsQueriesOnly(_ rows: LayerRows, _ p: PassContext) -> Bool { rows == .cls && p.observer == nil }

/// The [CLS] rows' context without forming keys or values: their queries (into qkv's first rows, free in this
/// mode), then their attention over every token's input row (Kernels/FirstQueryAttention.swift), into ctx.
func firstQueryContext(
    _ x: UnsafeMutablePointer<Float>, weights: LayerPlan.FirstQueryWeights, heads kept: Int, _ c: LayerActivations,
    _ p: PassContext
) {
    let (D, B, d) = (p.shape.hidden, p.sequences, p.shape.headDim)
    let width = kept * d
    let qCLS = c.qkv
    p.timer.measure("qkv gemm") {
        gemm(p.xCLS, rows: B, lda: D, weights.query, out: qCLS, ldc: width, epilogue: .bias, pool: p.pool)
    }
    p.timer.measure("attention") {
        weights.key.withUnsafeBufferPointer { wk in
            weights.valueT.withUnsafeBufferPointer { wvT in
                let run = { (bv: UnsafePointer<Float>?) in
                    firstQueryAttention(
                        x: x, ldx: D, features: D, offsets: p.batch.offsets, queries: qCLS, heads: kept, headDim: d,
                        keyWeight: wk.baseAddress!, valueWeightT: wvT.baseAddress!, valueBias: bv, ctx: c.ctx,
                        ldctx: width, pool: p.pool)
                }
                if let bias = weights.valueBias {
                    bias.withUnsafeBufferPointer { run($0.baseAddress!) }
                } else {
                    run(nil)
                }
            }
        }
    }
}

/// Layer 0 with repeated rows: Q/K/V of each distinct row once, then copied to its repeats — bit-identical, as
/// every row's product is rounded alike whichever rows share the GEMM call. (Two more arena buffers.)
func distinctRowsQKV(
    _ x: UnsafeMutablePointer<Float>, weight wqkv: PackedLinear, unique: [Int], source: [Int32],
    into qkv: UnsafeMutablePointer<Float>, _ p: PassContext
) {
    let (D, N, U, ld) = (p.shape.hidden, p.tokens, unique.count, wqkv.n)
    let xu = p.arena.take(U * D)  // [U, D]
    let qkvU = p.arena.take(U * ld)  // [U, 3w]
    let (qa, ua) = (UInt(bitPattern: qkv), UInt(bitPattern: qkvU))
    p.timer.measure("qkv gemm") {
        for (i, r) in unique.enumerated() { (xu + i * D).update(from: x + r * D, count: D) }
        gemm(xu, rows: U, lda: D, wqkv, out: qkvU, ldc: ld, epilogue: .bias, pool: p.pool)
        source.withUnsafeBufferPointer { src in
            let chunk = 64
            p.pool.parallelFor((N + chunk - 1) / chunk) { c in
                let out = UnsafeMutablePointer<Float>(bitPattern: qa)!
                let from = UnsafePointer<Float>(bitPattern: ua)!
                for r in (c * chunk)..<min(N, (c + 1) * chunk) {
                    (out + r * ld).update(from: from + Int(src[r]) * ld, count: ld)
                }
            }
        }
    }
}

/// out [R, D] ← LayerNorm₂(a + mask(Dropout(MLP(a)))); a pruned MLP adds its constant output instead.
func feedForwardBlockForward(
    layer l: Int, _ w: BertLayer, plan lp: LayerPlan, _ c: LayerActivations, _ p: PassContext, rows R: Int,
    into out: UnsafeMutablePointer<Float>, then tail: [LayerNormStep] = []
) {
    let (D, I, eps) = (p.shape.hidden, p.shape.inner, p.shape.eps)
    let scales = p.observer?.layerNormScales(layer: l, site: 1, tokens: R)
    let (gamma, beta) = (w.outputLayerNorm.gamma, w.outputLayerNorm.beta)
    if let constant = lp.mlpConstant, c.keepsForBackward {
        // h = a + constant, kept for LayerNorm₂'s backward.
        for r in 0..<R { (c.h + r * D).update(from: constant, count: D) }
        addVectors(c.h, c.a, count: R * D)
        p.timer.measure("layernorm") {
            layerNorm(
                c.h, out, rows: R, count: D, gamma: gamma, beta: beta, eps: eps, scales: scales,
                statistics: c.hStatistics, pool: p.pool)
        }
        return
    }
    if let constant = lp.mlpConstant {
        p.timer.measure("layernorm") {
            layerNorm(
                c.a, out, rows: R, count: D, adding: constant, gamma: gamma, beta: beta, eps: eps, scales: scales,
                pool: p.pool)
        }
        return
    }
    p.timer.measure("ffn1+gelu") {
        if c.u == c.gu {
            gemm(c.a, rows: R, lda: D, w.intermediate, out: c.u, ldc: I, epilogue: .biasGELU, pool: p.pool)
        } else {
            gemm(
                c.a, rows: R, lda: D, w.intermediate, out: c.u, ldc: I,
                epilogue: .biasGELUKeepingDerivative(values: c.gu, ld: I), pool: p.pool)
        }
    }
    p.timer.measure("ffn2 gemm") {
        if p.masks == nil && p.observer == nil && c.dropMLP == nil && c.m == c.h {
            gemm(c.gu, rows: R, lda: I, w.output, out: c.h, ldc: D, epilogue: .biasResidual(c.a, ld: D), pool: p.pool)
            return
        }
        gemm(c.gu, rows: R, lda: I, w.output, out: c.m, ldc: D, epilogue: .bias, pool: p.pool)
        p.observer?.mlpOutput(layer: l, c.m, tokens: R)
        p.observer?.editMLPOutput(layer: l, c.m, tokens: R)
        let (m, h, a, drop, masks) = (c.m, c.h, UnsafePointer(c.a), c.dropMLP, p.masks)
        parallelRowBlocks(R, pool: p.pool) { rows in
            let (at, n) = (rows.lowerBound * D, rows.count * D)
            if let drop { multiplyVectors(m + at, drop + at, count: n) }
            if h != m { (h + at).update(from: m + at, count: n) }
            masks?.applyMLP(h + at, rows: rows.count, layer: l, hidden: D)
            addVectors(h + at, a + at, count: n)
        }
    }
    p.timer.measure("layernorm") {
        if tail.isEmpty {
            layerNorm(
                c.h, out, rows: R, count: D, gamma: gamma, beta: beta, eps: eps, scales: scales,
                statistics: c.hStatistics, pool: p.pool)
        } else {
            let steps = [w.outputLayerNorm.step(adding: nil, eps: eps)] + tail
            layerNorm(c.h, rows: R, count: D, chain: LayerNormChain(steps, out: out, ld: D), pool: p.pool)
        }
    }
}

// MARK: - backward

/// The layer's weights transposed and packed for dX = dY·W (PackedLinear computes x·Mᵀ; M = Wᵀ gives dY·W).
package struct LayerBackwardWeights {
    package let qkvT, attentionOutputT, intermediateT, outputT: PackedLinear
    package init(_ w: BertLayer) {
        qkvT = w.qkv.transposedForBackward()
        attentionOutputT = w.attentionOutput.transposedForBackward()
        intermediateT = w.intermediate.transposedForBackward()
        outputT = w.output.transposedForBackward()
    }
    init(qkvT: PackedLinear, attentionOutputT: PackedLinear, intermediateT: PackedLinear, outputT: PackedLinear) {
        (self.qkvT, self.attentionOutputT, self.intermediateT, self.outputT) =
            (qkvT, attentionOutputT, intermediateT, outputT)
    }
}

/// Where one Linear's gradient accumulates: dW [out, in] and db [out].
package struct LinearGradientSlot {
    let weight, bias: UnsafeMutablePointer<Float>
    package init(weight: UnsafeMutablePointer<Float>, bias: UnsafeMutablePointer<Float>) {
        self.weight = weight
        self.bias = bias
    }
}

/// Where one LayerNorm's gradient accumulates: dγ and dβ [D].
package struct NormGradientSlot {
    let gamma, beta: UnsafeMutablePointer<Float>
    package init(gamma: UnsafeMutablePointer<Float>, beta: UnsafeMutablePointer<Float>) {
        self.gamma = gamma
        self.beta = beta
    }
}

/// Every weight gradient of one layer (fine-tuning).
package struct LayerGradients {
    package let qkv, attentionOutput: LinearGradientSlot
    package let attentionNorm: NormGradientSlot
    package let intermediate, output: LinearGradientSlot
    package let outputNorm: NormGradientSlot
    package init(
        qkv: LinearGradientSlot, attentionOutput: LinearGradientSlot, attentionNorm: NormGradientSlot,
        intermediate: LinearGradientSlot, output: LinearGradientSlot, outputNorm: NormGradientSlot
    ) {
        (self.qkv, self.attentionOutput, self.attentionNorm) = (qkv, attentionOutput, attentionNorm)
        (self.intermediate, self.output, self.outputNorm) = (intermediate, output, outputNorm)
    }
}

/// Scratch of the layer backward, shared by every layer of one pass.
package struct LayerBackwardScratch {
    package let dh, dm, dinter, da, dg, dctx, dqkv, dgFull, dctxFull: UnsafeMutablePointer<Float>
    package init(arena: ScratchArena, tokens N: Int, shape s: BlockShape) {
        let D = s.hidden
        dh = arena.take(N * D)
        dm = arena.take(N * D)
        dinter = arena.take(N * s.inner)
        da = arena.take(N * D)
        dg = arena.take(N * D)
        dctx = arena.take(N * D)
        dqkv = arena.take(N * 3 * D)
        dgFull = arena.take(N * D)
        dctxFull = arena.take(N * D)
    }
}

/// d loss / d mask of one layer: each head's, then its MLP's.
package struct LayerMaskGradients {
    package var heads: [Double]
    package var mlp: Double
}

/// Backward of layer `l` after a keeping forward under the plan `lp` (the full plan, or a gate plan that skips
/// closed units: GatePlan.swift). `dy` [R, D] is the gradient with respect to the layer's output rows (for `.cls`,
/// the B [CLS] rows). Returns d loss / d mask of this layer when masks are given (0 for a skipped unit or one whose
/// gradient is not needed); adds every weight gradient into `grads` when given (the full plan only); writes
/// d loss / d x [N, D] into `dx` unless it is nil (nothing below needs it). `dy` may alias `dx`.
@discardableResult
package func encoderLayerBackward(
    _ dy: UnsafePointer<Float>, layer l: Int, _ w: BertLayer, _ wT: LayerBackwardWeights, plan lp: LayerPlan,
    _ c: LayerActivations, _ p: PassContext, rows: LayerRows, scratch s: LayerBackwardScratch,
    grads: LayerGradients?, dx: UnsafeMutablePointer<Float>?
) -> LayerMaskGradients? {
    precondition(c.keepsForBackward && rows != .firstQuery, "a backward needs a forward that kept its activations")
    precondition(
        grads == nil || (lp.keptHeads.count == p.shape.heads && lp.mlpConstant == nil),
        "weight gradients need every unit")
    let R = rows == .all ? p.tokens : p.sequences
    // Both halves run whether or not masks are given (an optional-chained assignment would skip them).
    let mlp = feedForwardBlockBackward(dy, layer: l, w, wT, plan: lp, c, p, rows: R, scratch: s, grads: grads)
    let heads = attentionOutputBackward(layer: l, w, wT, plan: lp, c, p, rows: R, scratch: s, grads: grads)
    if let dx { attentionInputBackward(c, wT, plan: lp, p, rows: rows, scratch: s, grads: grads, dx: dx) }
    return p.masks == nil ? nil : LayerMaskGradients(heads: heads, mlp: mlp)
}

/// From dy (the layer's output) to da in `s.da`: LayerNorm₂, the mask, dropout, the MLP (a skipped MLP passes dh
/// through). Returns the MLP mask's gradient (0 without masks, or when skipped or not needed).
func feedForwardBlockBackward(
    _ dy: UnsafePointer<Float>, layer l: Int, _ w: BertLayer, _ wT: LayerBackwardWeights, plan lp: LayerPlan,
    _ c: LayerActivations, _ p: PassContext, rows R: Int, scratch s: LayerBackwardScratch, grads: LayerGradients?
) -> Double {
    let (D, I) = (p.shape.hidden, p.shape.inner)
    let stats = c.hStatistics!
    // y = LayerNorm₂(h)
    if let grads {
        layerNormParameterGradients(
            dy, x: c.h, mean: stats.mean, rstd: stats.rstd, rows: R, count: D, dGamma: grads.outputNorm.gamma,
            dBeta: grads.outputNorm.beta)
    }
    p.timer.measure("bwd layernorm") {
        layerNormBackward(
            dy, x: c.h, mean: stats.mean, rstd: stats.rstd, gamma: w.outputLayerNorm.gamma, rows: R, count: D,
            dx: s.dh, pool: p.pool)
    }
    if lp.mlpConstant != nil {
        // h = a + constant
        s.da.update(from: s.dh, count: R * D)
        return 0
    }
    // h = mask(m) + a ; m = Dropout(…): dm = dh · z ⊙ drop, and d z summed per block of rows, blocks in order
    let blocks = (R + 31) / 32
    var partial = [Double](repeating: 0, count: blocks)
    p.timer.measure("bwd masks") {
        let (dm, dh, m, drop, masks) = (s.dm, UnsafePointer(s.dh), UnsafePointer(c.m), c.dropMLP, p.masks)
        partial.withUnsafeMutableBufferPointer { sums in
            let sums = sums.baseAddress!
            parallelRowBlocks(R, pool: p.pool) { rows in
                let (at, n) = (rows.lowerBound * D, rows.count * D)
                if let masks {
                    sums[rows.lowerBound / 32] = masks.backward(
                        dy: dh + at, y: m + at, rows: rows.count, width: D, stride: D, z: masks.masks.mlps[l],
                        mean: masks.ablation.mlpMean(layer: l, hidden: D), needed: masks.needs?.mlps[l] ?? true,
                        out: dm + at, dropout: drop.map { $0 + at })
                } else {
                    (dm + at).update(from: dh + at, count: n)
                    if let drop { multiplyVectors(dm + at, drop + at, count: n) }
                }
            }
        }
    }
    let dz = partial.reduce(0, +)
    // m = gu W₂ᵀ + b₂ ; u = a W_iᵀ + b_i ; da = du W_i + dh
    if let slot = grads?.output { accumulate(s.dm, input: c.gu, slot, w.output, rows: R, p) }
    p.timer.measure("bwd ffn gemms") {
        // du = (dm W₂) ⊙ gelu'(u)
        gemm(
            s.dm, rows: R, lda: D, wT.outputT, out: s.dinter, ldc: I, epilogue: .multiplying(c.u, ld: I), pool: p.pool)
    }
    if let slot = grads?.intermediate { accumulate(s.dinter, input: c.a, slot, w.intermediate, rows: R, p) }
    p.timer.measure("bwd ffn gemms") {
        gemm(
            s.dinter, rows: R, lda: I, wT.intermediateT, out: s.da, ldc: D, epilogue: .biasResidual(s.dh, ld: D),
            pool: p.pool)
    }
    return dz
}

/// From da to the kept heads' dctx [R, w] in `s.dctx` (and dg, the residual's share, in `s.dg`): LayerNorm₁,
/// dropout, W_O, the head masks. Returns each head mask's gradient [H] (empty without masks).
func attentionOutputBackward(
    layer l: Int, _ w: BertLayer, _ wT: LayerBackwardWeights, plan lp: LayerPlan, _ c: LayerActivations,
    _ p: PassContext, rows R: Int, scratch s: LayerBackwardScratch, grads: LayerGradients?
) -> [Double] {
    let (D, H, d) = (p.shape.hidden, p.shape.heads, p.shape.headDim)
    let stats = c.gStatistics!
    // a = LayerNorm₁(g) ; g = Dropout(ĉ W_Oᵀ + b_O) + x
    if let grads {
        layerNormParameterGradients(
            s.da, x: c.g, mean: stats.mean, rstd: stats.rstd, rows: R, count: D, dGamma: grads.attentionNorm.gamma,
            dBeta: grads.attentionNorm.beta)
    }
    p.timer.measure("bwd layernorm") {
        layerNormBackward(
            s.da, x: c.g, mean: stats.mean, rstd: stats.rstd, gamma: w.attentionLayerNorm.gamma, rows: R, count: D,
            dx: s.dg, pool: p.pool)
    }
    let width = lp.keptHeads.count * d
    if width > 0 { contextBackward(wT, c, p, rows: R, width: width, scratch: s, grads: grads, w: w) }
    guard let masks = p.masks else { return [] }
    // ĉ_h = mask(ctx_h), one head per task; a skipped head's gradient stays 0
    var dz = [Double](repeating: 0, count: H)
    let (dctx, ctx) = (s.dctx, UnsafePointer(c.ctx))
    dz.withUnsafeMutableBufferPointer { dz in
        let dz = dz.baseAddress!
        p.pool.parallelFor(lp.keptHeads.count) { i in
            let hd = lp.keptHeads[i]
            dz[hd] = masks.backward(
                dy: dctx + i * d, y: ctx + i * d, rows: R, width: d, stride: width, z: masks.masks.heads[l][hd],
                mean: masks.ablation.headMean(layer: l, head: hd, heads: H, headDim: d),
                needed: masks.needs?.heads[l][hd] ?? true, out: dctx + i * d)
        }
    }
    return dz
}

/// dctx [R, width] ← Dropout'(dg) · W_O over the kept heads' columns (and W_O's gradient when asked).
func contextBackward(
    _ wT: LayerBackwardWeights, _ c: LayerActivations, _ p: PassContext, rows R: Int, width: Int,
    scratch s: LayerBackwardScratch, grads: LayerGradients?, w: BertLayer
) {
    let D = p.shape.hidden
    var dout = UnsafePointer(s.dg)
    if let drop = c.dropAttention {
        let (dm, dg) = (s.dm, UnsafePointer(s.dg))  // dm is free again
        parallelRowBlocks(R, pool: p.pool) { rows in
            let (at, n) = (rows.lowerBound * D, rows.count * D)
            (dm + at).update(from: dg + at, count: n)
            multiplyVectors(dm + at, drop + at, count: n)
        }
        dout = UnsafePointer(s.dm)
    }
    if let slot = grads?.attentionOutput { accumulate(dout, input: c.ctxMasked, slot, w.attentionOutput, rows: R, p) }
    p.timer.measure("bwd out gemm") {
        gemm(dout, rows: R, lda: D, wT.attentionOutputT, out: s.dctx, ldc: width, epilogue: .none, pool: p.pool)
    }
}

/// From dctx and dg to dx [N, D]: attention, then the Q/K/V projections, dx = dqkv W_qkv + dg (dx = dg when the
/// plan keeps no head).
func attentionInputBackward(
    _ c: LayerActivations, _ wT: LayerBackwardWeights, plan lp: LayerPlan, _ p: PassContext, rows: LayerRows,
    scratch s: LayerBackwardScratch, grads: LayerGradients?, dx: UnsafeMutablePointer<Float>
) {
    let (N, D, d) = (p.tokens, p.shape.hidden, p.shape.headDim)
    let kept = lp.keptHeads.count
    let width = kept * d
    var dctxAll = UnsafePointer(s.dctx)
    var dgAll = UnsafePointer(s.dg)
    if rows == .cls {
        // Back to N rows: only the [CLS] rows have a gradient.
        if kept > 0 { scatterCLS(s.dctx, into: s.dctxFull, offsets: p.batch.offsets, width: width, zeroOthers: true) }
        scatterCLS(s.dg, into: s.dgFull, offsets: p.batch.offsets, width: D, zeroOthers: true)
        dctxAll = UnsafePointer(s.dctxFull)
        dgAll = UnsafePointer(s.dgFull)
    }
    guard kept > 0 else {
        if UnsafePointer(dx) != dgAll { dx.update(from: dgAll, count: N * D) }
        return
    }
    p.timer.measure("bwd attention") {
        attentionBackward(
            qkv: c.qkv, ldqkv: 3 * width, probs: c.probs!, dctx: dctxAll, ldctx: width, heads: kept, headDim: d,
            offsets: p.batch.offsets, dqkv: s.dqkv, probDropout: c.dropProbs,
            slots: lp.probabilitySlots(heads: p.shape.heads), firstQueryOnly: clsQueriesOnly(rows, p), pool: p.pool)
    }
    if let slot = grads?.qkv, let xIn = c.xIn {
        accumulateLinearGradients(
            dy: s.dqkv, ldy: 3 * D, x: xIn, ldx: D, rows: N, out: 3 * D, inp: D, dW: slot.weight, db: slot.bias,
            pool: p.pool)
    }
    p.timer.measure("bwd qkv gemm") {
        guard rows == .cls else {
            gemm(
                s.dqkv, rows: N, lda: 3 * width, wT.qkvT, out: dx, ldc: D, epilogue: .biasResidual(dgAll, ld: D),
                pool: p.pool)
            return
        }
        // Only the [CLS] rows have a query gradient: dx = dK W_K + dV W_V + dg over every row, then dQ W_Q added
        // on the B [CLS] rows alone (a third of the product over N rows that would multiply zeros). s.dctx and s.dg,
        // whose B rows were scattered into the full buffers above, hold dQ's rows and their product.
        gemm(
            s.dqkv + width, rows: N, lda: 3 * width, wT.qkvT, out: dx, ldc: D, epilogue: .biasResidual(dgAll, ld: D),
            inputs: width..<(3 * width), pool: p.pool)
        let offsets = p.batch.offsets
        gatherCLS(s.dqkv, into: s.dctx, offsets: offsets, width: width, stride: 3 * width)
        gemm(
            s.dctx, rows: offsets.count - 1, lda: width, wT.qkvT, out: s.dg, ldc: D, epilogue: .none,
            inputs: 0..<width, pool: p.pool)
        scatterAddCLS(s.dg, into: dx, offsets: offsets, width: D)
    }
}

/// dW += doutᵀ · input and db += Σ dout over R rows, for the Linear `forward`.
func accumulate(
    _ dout: UnsafePointer<Float>, input: UnsafePointer<Float>, _ slot: LinearGradientSlot, _ forward: PackedLinear,
    rows R: Int, _ p: PassContext
) {
    accumulateLinearGradients(
        dy: dout, ldy: forward.n, x: input, ldx: forward.k, rows: R, out: forward.n, inp: forward.k, dW: slot.weight,
        db: slot.bias, pool: p.pool)
}
