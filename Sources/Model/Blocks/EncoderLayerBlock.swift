// One post-LN encoder layer in training mode: its forward keeps what its backward needs, and its backward
// gives the gradient with respect to the layer input, the soft masks and (fine-tuning) every weight.
// The drivers (MaskGradients.swift for pruning and importance, Train's TrainableBert for fine-tuning) are
// loops over this pair; inference runs the fast variant of the same math, `BertModel.runLayers`.
//
//   qkv = x W_qkvᵀ + b                              [N, 3D]
//   ctx = Dropout(softmax(Q Kᵀ/√d)) V  per (seq, head) [N, D]   probs kept (and their dropout multipliers)
//   ĉ   = mask(ctx)                                   [R, D]   soft head masks (SoftMasks)
//   g   = Dropout(ĉ W_Oᵀ + b_O) + x                   [R, D]
//   a   = LayerNorm₁(g)                               [R, D]   mean, 1/std kept
//   u   = a W_iᵀ + b_i;  gu = gelu(u)                 [R, I]   u ← gelu'(u)
//   m   = Dropout(gu W_2ᵀ + b_2)                      [R, D]
//   h   = mask(m) + a                                 [R, D]
//   y   = LayerNorm₂(h)                               [R, D]
// R = N, or B when `compact`: the last layer after attention runs for the [CLS] rows only (nothing else
// reaches the classifier, so the other rows would carry zero gradient); its output is scattered back into
// the [CLS] rows of x, and its other rows keep the layer's input.
import Kernels

/// What one layer's training-mode passes read: packed weights for x·Wᵀ and, for the backward, Wᵀ packed
/// so that dX = dY·W is the same GEMM.
package struct LayerParameters {
    package let qkv, attentionOutput, intermediate, output: PackedLinear
    package let attentionNorm, outputNorm: LayerNormWeights
    package let qkvT, attentionOutputT, intermediateT, outputT: PackedLinear

    /// Packs the transposed weights from the forward ones.
    package init(
        qkv: PackedLinear, attentionOutput: PackedLinear, intermediate: PackedLinear, output: PackedLinear,
        attentionNorm: LayerNormWeights, outputNorm: LayerNormWeights
    ) {
        (self.qkv, self.attentionOutput, self.intermediate, self.output) = (qkv, attentionOutput, intermediate, output)
        (self.attentionNorm, self.outputNorm) = (attentionNorm, outputNorm)
        qkvT = qkv.transposedForBackward()
        attentionOutputT = attentionOutput.transposedForBackward()
        intermediateT = intermediate.transposedForBackward()
        outputT = output.transposedForBackward()
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

/// What one layer's forward keeps for its backward. Shapes with N tokens, R rows after attention, D hidden, I inner.
package struct LayerCache {
    package let xIn, qkv, probs: UnsafeMutablePointer<Float>  // [N, D], [N, 3D], Σ_s H·T_s²
    package let ctx, ctxMasked, g, gMean, gRstd, a: UnsafeMutablePointer<Float>  // [N, D] ([R, D] used) …, [R], [R]
    package let u, gu: UnsafeMutablePointer<Float>  // [R, I] gelu'(u), gelu(u) (gu may be shared between layers)
    package let m, h, hMean, hRstd: UnsafeMutablePointer<Float>  // [R, D], [R, D], [R], [R]
    /// Inverted-dropout multipliers [N, D] as drawn (the forward compacts them to [R, D] in place); nil: off.
    package let dropAttention, dropMLP: UnsafeMutablePointer<Float>?
    /// Attention-probability dropout multipliers, laid out as `probs`; nil: off.
    package let dropProbs: UnsafeMutablePointer<Float>?

    /// `geluOutput`: a buffer [N, I] to share between layers when nothing reads gelu(u) after the forward
    /// (mask gradients); nil gives this layer its own (weight gradients read it).
    package init(
        arena: ScratchArena, tokens N: Int, hidden D: Int, inner I: Int, probCount: Int,
        geluOutput: UnsafeMutablePointer<Float>?, dropAttention: UnsafeMutablePointer<Float>?,
        dropMLP: UnsafeMutablePointer<Float>?,
        dropProbs: UnsafeMutablePointer<Float>? = nil
    ) {
        xIn = arena.take(N * D)
        qkv = arena.take(N * 3 * D)
        probs = arena.take(probCount)
        ctx = arena.take(N * D)
        ctxMasked = arena.take(N * D)
        g = arena.take(N * D)
        gMean = arena.take(N)
        gRstd = arena.take(N)
        a = arena.take(N * D)
        u = arena.take(N * I)
        gu = geluOutput ?? arena.take(N * I)
        m = arena.take(N * D)
        h = arena.take(N * D)
        hMean = arena.take(N)
        hRstd = arena.take(N)
        self.dropAttention = dropAttention
        self.dropMLP = dropMLP
        self.dropProbs = dropProbs
    }
}

/// The shape of a batch as the blocks see it.
package struct BlockShape {
    package let offsets: [Int]
    package let hidden: Int, inner: Int, heads: Int, headDim: Int, eps: Float
    package var tokens: Int { offsets.last! }
    package var sequences: Int { offsets.count - 1 }
    package init(offsets: [Int], hidden: Int, inner: Int, heads: Int, headDim: Int, eps: Float) {
        (self.offsets, self.hidden, self.inner, self.heads, self.headDim, self.eps) = (
            offsets, hidden, inner, heads, headDim, eps
        )
    }
}

/// Forward of layer `l` on x [N, D] in place (see the file comment); `xCLS` [B, D] is scratch for `compact`.
package func encoderLayerForward(
    _ x: UnsafeMutablePointer<Float>, layer l: Int, _ p: LayerParameters, _ c: LayerCache,
    shape s: BlockShape, masks: SoftMasks?, compact: Bool, xCLS: UnsafeMutablePointer<Float>,
    pool: ThreadPool
) {
    let N = s.tokens
    let D = s.hidden
    let I = s.inner
    let R = compact ? s.sequences : N
    let xr = compact ? xCLS : x  // this layer's residual rows, and where its output goes
    c.xIn.update(from: x, count: N * D)
    gemm(x, rows: N, lda: D, p.qkv, out: c.qkv, ldc: 3 * D, epilogue: .bias, pool: pool)
    attention(
        qkv: c.qkv, ldqkv: 3 * D, heads: s.heads, headDim: s.headDim, offsets: s.offsets, ctx: c.ctx, ldctx: D,
        probs: c.probs, pool: pool)
    if let drop = c.dropProbs {
        droppedAttentionContext(
            qkv: c.qkv, ldqkv: 3 * D, probs: c.probs, drop: drop, heads: s.heads, headDim: s.headDim,
            offsets: s.offsets, ctx: c.ctx, ldctx: D, pool: pool)
    }
    if compact {
        gatherCLS(x, into: xCLS, offsets: s.offsets, width: D)
        gatherCLS(c.ctx, into: c.ctx, offsets: s.offsets, width: D)
        for drop in [c.dropAttention, c.dropMLP] {
            if let drop { gatherCLS(drop, into: drop, offsets: s.offsets, width: D) }
        }
    }
    c.ctxMasked.update(from: c.ctx, count: R * D)
    masks?.applyHeads(c.ctxMasked, rows: R, layer: l, headDim: s.headDim)
    if let drop = c.dropAttention {
        gemm(c.ctxMasked, rows: R, lda: D, p.attentionOutput, out: c.g, ldc: D, epilogue: .bias, pool: pool)
        multiply(c.g, by: drop, count: R * D)
        addVectors(c.g, xr, count: R * D)
    } else {
        gemm(
            c.ctxMasked, rows: R, lda: D, p.attentionOutput, out: c.g, ldc: D, epilogue: .biasResidual(xr, ld: D),
            pool: pool)
    }
    layerNormForward(
        c.g, c.a, rows: R, count: D, gamma: p.attentionNorm.gamma, beta: p.attentionNorm.beta, eps: s.eps,
        mean: c.gMean, rstd: c.gRstd)
    gemm(c.a, rows: R, lda: D, p.intermediate, out: c.u, ldc: I, epilogue: .bias, pool: pool)
    geluWithDerivative(c.u, out: c.gu, count: R * I)  // c.u now holds gelu'(u)
    gemm(c.gu, rows: R, lda: I, p.output, out: c.m, ldc: D, epilogue: .bias, pool: pool)
    multiply(c.m, by: c.dropMLP, count: R * D)
    c.h.update(from: c.m, count: R * D)
    masks?.applyMLP(c.h, rows: R, layer: l, hidden: D)
    addVectors(c.h, c.a, count: R * D)
    layerNormForward(
        c.h, xr, rows: R, count: D, gamma: p.outputNorm.gamma, beta: p.outputNorm.beta, eps: s.eps,
        mean: c.hMean, rstd: c.hRstd)
    if compact { scatterCLS(xCLS, into: x, offsets: s.offsets, width: D) }
}

/// Scratch of the layer backward, shared by every layer of one pass.
package struct LayerBackwardScratch {
    package let dh, dm, dinter, da, dg, dctx, dqkv, dgFull, dctxFull: UnsafeMutablePointer<Float>
    package init(arena: ScratchArena, tokens N: Int, hidden D: Int, inner I: Int) {
        dh = arena.take(N * D)
        dm = arena.take(N * D)
        dinter = arena.take(N * I)
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

/// Backward of layer `l`. `dy` [R, D] is the gradient with respect to the layer's output rows (for
/// `compact`, the B [CLS] rows). Returns d loss / d mask of this layer when masks are given (nil without);
/// adds every weight gradient into `grads` when given. Writes d loss / d x [N, D] into `dx` unless it is nil
/// (nothing below needs it). `dy` may alias `dx`.
@discardableResult
package func encoderLayerBackward(
    _ dy: UnsafePointer<Float>, layer l: Int, _ p: LayerParameters, _ c: LayerCache,
    shape s: BlockShape, masks: SoftMasks?, compact: Bool, scratch w: LayerBackwardScratch,
    grads: LayerGradients?, dx: UnsafeMutablePointer<Float>?, pool: ThreadPool
) -> LayerMaskGradients? {
    let N = s.tokens
    let D = s.hidden
    let I = s.inner
    let H = s.heads
    let d = s.headDim
    let R = compact ? s.sequences : N
    func linearBackward(
        _ dout: UnsafePointer<Float>, input: UnsafePointer<Float>, _ slot: LinearGradientSlot?, _ forward: PackedLinear
    ) {
        guard let slot else { return }
        accumulateLinearGradients(
            dy: dout, ldy: forward.n, x: input, ldx: forward.k, rows: R, out: forward.n, inp: forward.k,
            dW: slot.weight, db: slot.bias, pool: pool)
    }
    // y = LayerNorm₂(h)
    if let grads {
        layerNormParameterGradients(
            dy, x: c.h, mean: c.hMean, rstd: c.hRstd, rows: R, count: D, dGamma: grads.outputNorm.gamma,
            dBeta: grads.outputNorm.beta)
    }
    layerNormBackward(
        dy, x: c.h, mean: c.hMean, rstd: c.hRstd, gamma: p.outputNorm.gamma, rows: R, count: D, dx: w.dh, pool: pool)
    // h = mask(m) + a
    w.dm.update(from: w.dh, count: R * D)
    var maskGradients = masks.map { _ in LayerMaskGradients(heads: [Double](repeating: 0, count: H), mlp: 0) }
    if let masks {
        maskGradients?.mlp = SoftMasks.backward(
            dy: w.dm, y: c.m, rows: R, width: D, stride: D, z: masks.masks.mlps[l],
            mean: masks.mlpMean(layer: l, hidden: D))
    }
    multiply(w.dm, by: c.dropMLP, count: R * D)
    // m = gu W₂ᵀ + b₂ ; u = a W_iᵀ + b_i ; da = du W_i + dh
    linearBackward(w.dm, input: c.gu, grads?.output, p.output)
    gemm(w.dm, rows: R, lda: D, p.outputT, out: w.dinter, ldc: I, epilogue: .none, pool: pool)
    for i in 0..<(R * I) { w.dinter[i] *= c.u[i] }
    linearBackward(w.dinter, input: c.a, grads?.intermediate, p.intermediate)
    gemm(
        w.dinter, rows: R, lda: I, p.intermediateT, out: w.da, ldc: D, epilogue: .biasResidual(w.dh, ld: D), pool: pool)
    // a = LayerNorm₁(g) ; g = Dropout(ĉ W_Oᵀ + b_O) + x
    if let grads {
        layerNormParameterGradients(
            w.da, x: c.g, mean: c.gMean, rstd: c.gRstd, rows: R, count: D, dGamma: grads.attentionNorm.gamma,
            dBeta: grads.attentionNorm.beta)
    }
    layerNormBackward(
        w.da, x: c.g, mean: c.gMean, rstd: c.gRstd, gamma: p.attentionNorm.gamma, rows: R, count: D, dx: w.dg,
        pool: pool)
    var dout = UnsafePointer(w.dg)
    if let drop = c.dropAttention {
        w.dm.update(from: w.dg, count: R * D)  // dm is free again
        multiply(w.dm, by: drop, count: R * D)
        dout = UnsafePointer(w.dm)
    }
    linearBackward(dout, input: c.ctxMasked, grads?.attentionOutput, p.attentionOutput)
    gemm(dout, rows: R, lda: D, p.attentionOutputT, out: w.dctx, ldc: D, epilogue: .none, pool: pool)
    // ĉ_h = mask(ctx_h)
    if let masks {
        for hd in 0..<H {
            maskGradients?.heads[hd] = SoftMasks.backward(
                dy: w.dctx + hd * d, y: c.ctx + hd * d, rows: R, width: d, stride: D,
                z: masks.masks.heads[l][hd], mean: masks.headMean(layer: l, head: hd, heads: H, headDim: d))
        }
    }
    guard let dx else { return maskGradients }
    // Attention, then the Q/K/V projections: dx = dqkv W_qkv + dg.
    var dctxAll = UnsafePointer(w.dctx)
    var dgAll = UnsafePointer(w.dg)
    if compact {  // back to N rows: only the [CLS] rows have a gradient
        scatterCLS(w.dctx, into: w.dctxFull, offsets: s.offsets, width: D, zeroOthers: true)
        scatterCLS(w.dg, into: w.dgFull, offsets: s.offsets, width: D, zeroOthers: true)
        dctxAll = UnsafePointer(w.dctxFull)
        dgAll = UnsafePointer(w.dgFull)
    }
    attentionBackward(
        qkv: c.qkv, ldqkv: 3 * D, probs: c.probs, dctx: dctxAll, ldctx: D, heads: H, headDim: d,
        offsets: s.offsets, dqkv: w.dqkv, probDropout: c.dropProbs, pool: pool)
    if let grads {
        accumulateLinearGradients(
            dy: w.dqkv, ldy: 3 * D, x: c.xIn, ldx: D, rows: N, out: 3 * D, inp: D,
            dW: grads.qkv.weight, db: grads.qkv.bias, pool: pool)
    }
    gemm(w.dqkv, rows: N, lda: 3 * D, p.qkvT, out: dx, ldc: D, epilogue: .biasResidual(dgAll, ld: D), pool: pool)
    return maskGradients
}
