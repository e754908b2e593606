// Gradients of the pruning objective with respect to the mask values, masks held fixed — the backward
// pass of the masked BERT, layer by layer, forward and backward side by side (llm.c style).
//
// Objective (Heuristic-Core's faithfulness term, ../shared/golden §5), for a batch of B sequences:
//   kl: loss = (1/B) Σ_b Σ_c p_full[b,c] (log p_full[b,c] − log p_sub[b,c])     (full model unmasked, no grad)
//   ce: loss = (1/B) Σ_b −log p_sub[b, label_b]
// Both give dloss/dlogits_sub = (p_sub − target)/B with target = p_full or one-hot.
// Mask gradients are reductions over tokens:  dz_h = Σ dctx_masked_h ⊙ (ctx_h − avg_h)  (zero ablation: ⊙ ctx_h)
// and dz_mlp = Σ dm_masked ⊙ (m − avg_mlp).
// Dropout (`dropout` > 0, the reference trains the subnetwork in training mode) is BERT's hidden dropout where
// the reference's modeling code applies it: after the embeddings, after the attention output projection
// (before the residual), after the MLP's second dense layer (before the mask: m is the dropped output), and
// on the pooled output before the classifier — inverted, masks drawn from SplitMix64(dropoutSeed).
// Attention-probability dropout is not applied.
import Foundation
import Kernels

public enum ImportanceObjective: Sendable {
    /// KL to the full model's distribution, computed here with a forward pass of the unmasked model.
    case kl
    /// KL to given full-model probabilities [B·C] (the same numbers `.kl` computes; pruning caches them
    /// per example, since the full model never changes).
    case klToProbabilities([Double])
    case crossEntropy(labels: [Int])
}

public struct MaskGradients: Sendable {
    public var heads: [[Double]]
    public var mlps: [Double]
    public var loss: Double
}

/// Weights transposed and packed for dX = dY · W (PackedLinear computes x · Mᵀ; M = Wᵀ gives dY · W).
final class BackwardWeights: @unchecked Sendable {
    let qkvT: [PackedLinear], outT: [PackedLinear], inT: [PackedLinear], ffnOutT: [PackedLinear]
    let poolerT: PackedLinear?, classifierT: PackedLinear

    init(model: BertModel) {
        func t(_ p: PackedLinear) -> PackedLinear { p.transposedForBackward() }
        qkvT = model.layers.map { t($0.qkv) }
        outT = model.layers.map { t($0.attentionOutput) }
        inT = model.layers.map { t($0.intermediate) }
        ffnOutT = model.layers.map { t($0.output) }
        poolerT = model.pooler.map(t)
        classifierT = t(model.classifier!)
    }
}

/// What the forward keeps for the backward of one layer. Shapes in comments; N tokens, D hidden, I inner.
struct LayerCache {
    let xIn, qkv, ctx, ctxMasked, g, gMean, gRstd, a, u, m, h, hMean, hRstd: UnsafeMutablePointer<Float>
    let probs: UnsafeMutablePointer<Float>
    init(arena: ScratchArena, N: Int, D: Int, I: Int, probCount: Int) {
        xIn = arena.take(N * D)        // [N, D] layer input
        qkv = arena.take(N * 3 * D)    // [N, 3D]
        ctx = arena.take(N * D)        // [N, D] per-head context before masks
        ctxMasked = arena.take(N * D)  // [N, D] after masks (input of W_O)
        g = arena.take(N * D)          // [N, D] attention output + residual (LayerNorm 1 input)
        gMean = arena.take(N); gRstd = arena.take(N)
        a = arena.take(N * D)          // [N, D] LayerNorm 1 output
        u = arena.take(N * I)          // [N, I] pre-GELU, then gelu'(pre-GELU) (all the backward needs)
        m = arena.take(N * D)          // [N, D] MLP output before mask
        h = arena.take(N * D)          // [N, D] masked MLP output + residual (LayerNorm 2 input)
        hMean = arena.take(N); hRstd = arena.take(N)
        probs = arena.take(probCount)  // Σ_s H·T_s² attention probabilities
    }
}

extension BertModel {
    /// Loss and d loss / d mask for fixed (continuous) masks on one batch (see the file comment).
    public func maskGradients(_ batch: TokenBatch, masks: MaskValues, ablation: Ablation, objective: ImportanceObjective = .kl,
                              dropout: Float = 0, dropoutSeed: UInt64 = 0, clsOnlyLastLayer: Bool = true,
                              pool: ThreadPool = .shared) throws -> MaskGradients {
        guard let classifier else { throw ModelError.noClassifier(path: folder) }
        try checkMasks(masks, ablation)
        let B = batch.count, C = classifier.n, N = batch.tokenCount, D = hidden, I = config.intermediateSize, H = headCount, d = headDim
        if case .crossEntropy(let labels) = objective, labels.count != B || labels.contains(where: { $0 < 0 || $0 >= C }) {
            throw ModelError.badInput("cross-entropy needs one label in 0..<\(C) per sequence")
        }
        let back = backwardWeights
        let avgHead: [Float]? = { if case .mean(let a) = ablation { return a.avgHead }; return nil }()
        let avgMLP: [Float]? = { if case .mean(let a) = ablation { return a.avgMLP }; return nil }()
        let probCount = attentionProbOffsets(offsets: batch.offsets, heads: H).last!

        // Scratch buffers from the model's arenas (another caller running at the same time gets its own).
        let arena = takeArena()
        defer { returnArena(arena) }
        // Inverted-dropout multipliers, one buffer per site, or nil when dropout is off.
        var rng = SplitMix64(seed: dropoutSeed)
        func dropoutMask(_ n: Int) -> UnsafeMutablePointer<Float>? {
            guard dropout > 0 else { return nil }
            let m = arena.take(n)
            for i in 0..<n { m[i] = rng.uniform() < Double(dropout) ? 0 : 1 / (1 - dropout) }
            return m
        }
        func multiply(_ x: UnsafeMutablePointer<Float>, _ m: UnsafeMutablePointer<Float>?, _ n: Int) {
            guard let m else { return }
            for i in 0..<n { x[i] *= m[i] }
        }

        // ---- forward, keeping what the backward needs ----
        let x = try embeddings(batch, pool: pool)
        defer { x.deallocate() }
        multiply(x, dropoutMask(N * D), N * D)
        var dropAttention = (0..<layerCount).map { _ in dropoutMask(N * D) }, dropMLP = (0..<layerCount).map { _ in dropoutMask(N * D) }
        let caches = (0..<layerCount).map { _ in LayerCache(arena: arena, N: N, D: D, I: I, probCount: probCount) }
        let inter = arena.take(N * I)
        // The last layer after attention runs on the B [CLS] rows only (as in `runLayers`): nothing else
        // reaches the classifier, so the other rows would carry zero gradient. Its rows are gathered into
        // xCLS and its caches hold B compact rows; dropout multipliers are still drawn for all N rows (the
        // random stream does not depend on this) and gathered.
        let last = layerCount - 1
        let xCLS = arena.take(B * D)
        func gatherCLS(_ src: UnsafePointer<Float>, into dst: UnsafeMutablePointer<Float>, width: Int) {
            for s in 0..<B { (dst + s * width).update(from: src + batch.offsets[s] * width, count: width) }
        }
        func compactDrop(_ m: UnsafeMutablePointer<Float>?) -> UnsafeMutablePointer<Float>? {
            guard let m else { return nil }
            let c = arena.take(B * D)
            gatherCLS(m, into: c, width: D)
            return c
        }
        for (l, layer) in layers.enumerated() {
            let c = caches[l]
            let compact = clsOnlyLastLayer && l == last
            let R = compact ? B : N                 // rows after attention
            let xr = compact ? xCLS : x             // this layer's input rows (residual) and output rows
            c.xIn.update(from: x, count: N * D)
            gemm(x, rows: N, lda: D, layer.qkv, out: c.qkv, ldc: 3 * D, epilogue: .bias, pool: pool)
            attention(qkv: c.qkv, ldqkv: 3 * D, heads: H, headDim: d, offsets: batch.offsets, ctx: c.ctx, ldctx: D, probs: c.probs, pool: pool)
            if compact {
                gatherCLS(x, into: xCLS, width: D)
                gatherCLS(c.ctx, into: c.ctx, width: D)   // in place: row s ← row offsets[s] ≥ s, ascending
            }
            let dropA = compact ? compactDrop(dropAttention[l]) : dropAttention[l]
            let dropM = compact ? compactDrop(dropMLP[l]) : dropMLP[l]
            c.ctxMasked.update(from: c.ctx, count: R * D)
            applyHeadMasks(c.ctxMasked, tokens: R, layer: l, masks, ablation)
            if let drop = dropA {
                gemm(c.ctxMasked, rows: R, lda: D, layer.attentionOutput, out: c.g, ldc: D, epilogue: .bias, pool: pool)
                multiply(c.g, drop, R * D)
                addVectors(c.g, xr, count: R * D)
            } else {
                gemm(c.ctxMasked, rows: R, lda: D, layer.attentionOutput, out: c.g, ldc: D, epilogue: .biasResidual(xr, ld: D), pool: pool)
            }
            layerNormForward(c.g, c.a, rows: R, count: D, gamma: layer.attentionLayerNorm.gamma, beta: layer.attentionLayerNorm.beta,
                             eps: config.layerNormEps, mean: c.gMean, rstd: c.gRstd)
            gemm(c.a, rows: R, lda: D, layer.intermediate, out: c.u, ldc: I, epilogue: .bias, pool: pool)
            geluWithDerivative(c.u, out: inter, count: R * I)     // c.u now holds gelu'(u)
            gemm(inter, rows: R, lda: I, layer.output, out: c.m, ldc: D, epilogue: .bias, pool: pool)
            multiply(c.m, dropM, R * D)
            if compact { dropMLP[l] = dropM }               // the backward multiplies by the same rows
            c.h.update(from: c.m, count: R * D)
            applyMLPMask(c.h, tokens: R, layer: l, masks, ablation)
            addVectors(c.h, c.a, count: R * D)
            layerNormForward(c.h, xr, rows: R, count: D, gamma: layer.outputLayerNorm.gamma, beta: layer.outputLayerNorm.beta,
                             eps: config.layerNormEps, mean: c.hMean, rstd: c.hRstd)
            if compact {
                dropAttention[l] = dropA
                for s in 0..<B { (x + batch.offsets[s] * D).update(from: xCLS + s * D, count: D) }
            }
        }
        // Pooler and classifier (the forward's own code; the pooled output is kept for tanh').
        let keep = PooledRecorder(width: D), dropPooled = dropoutMask(B * D)
        let logits = classify(x, batch: batch, classifier: classifier, observer: keep, pooledDropout: dropPooled, pool: pool)
        let pooled = keep.values

        // ---- loss and dloss/dlogits ----
        let target: [Double]
        switch objective {
        case .kl:
            target = try fullModelProbabilities(batch, pool: pool).flatMap { $0 }
        case .klToProbabilities(let p):
            guard p.count == B * C else { throw ModelError.badInput("klToProbabilities needs \(B * C) probabilities, got \(p.count)") }
            target = p
        case .crossEntropy(let labels):
            target = (0..<B).flatMap { b in (0..<C).map { $0 == labels[b] ? 1.0 : 0.0 } }
        }
        var loss = 0.0
        var dlogits = [Float](repeating: 0, count: B * C)
        for b in 0..<B {
            let p = softmaxDouble(Array(logits[(b * C)..<((b + 1) * C)]))
            let logp = logSoftmaxDouble(Array(logits[(b * C)..<((b + 1) * C)]))
            for c in 0..<C {
                let t = target[b * C + c]
                if t > 0 { loss += t * ((objective.isKL ? log(t) : 0) - logp[c]) }
                dlogits[b * C + c] = Float((p[c] - t) / Double(B))
            }
        }
        loss /= Double(B)

        // ---- backward ----
        let dx = arena.take(N * D)                     // gradient w.r.t. the current layer's output
        for i in 0..<(N * D) { dx[i] = 0 }
        let dpooled = arena.take(B * D), dcls = arena.take(B * D)
        dlogits.withUnsafeBufferPointer { gemm($0.baseAddress!, rows: B, lda: C, back.classifierT, out: dpooled, ldc: D, epilogue: .none, pool: pool) }
        multiply(dpooled, dropPooled, B * D)
        if let pT = back.poolerT {
            for i in 0..<(B * D) { dpooled[i] *= 1 - pooled[i] * pooled[i] }      // tanh'
            gemm(dpooled, rows: B, lda: D, pT, out: dcls, ldc: D, epilogue: .none, pool: pool)
        } else {
            dcls.update(from: dpooled, count: B * D)
        }
        for s in 0..<B { (dx + batch.offsets[s] * D).update(from: dcls + s * D, count: D) }

        var gradHeads = [[Double]](repeating: [Double](repeating: 0, count: H), count: layerCount)
        var gradMLP = [Double](repeating: 0, count: layerCount)
        let dh = arena.take(N * D), dm = arena.take(N * D), dinter = arena.take(N * I), da = arena.take(N * D)
        let dg = arena.take(N * D), dctx = arena.take(N * D), dqkv = arena.take(N * 3 * D)
        let dgFull = arena.take(N * D), dctxFull = arena.take(N * D)   // the compact last layer's rows scattered back
        for l in stride(from: layerCount - 1, through: 0, by: -1) {
            let layer = layers[l], c = caches[l]
            let compact = clsOnlyLastLayer && l == last
            let R = compact ? B : N
            // x = LayerNorm2(h)   (the compact last layer's output gradient is dcls itself)
            layerNormBackward(compact ? dcls : dx, x: c.h, mean: c.hMean, rstd: c.hRstd, gamma: layer.outputLayerNorm.gamma,
                              rows: R, count: D, dx: dh, pool: pool)
            // h = mask(m) + a ; mask(m) = (m − avg)·z + avg
            var gz = 0.0
            let z = masks.mlps[l]
            for t in 0..<R {
                for j in 0..<D {
                    let centered = c.m[t * D + j] - (avgMLP?[l * D + j] ?? 0)
                    gz += Double(dh[t * D + j]) * Double(centered)
                    dm[t * D + j] = dh[t * D + j] * z
                }
            }
            multiply(dm, dropMLP[l], R * D)
            gradMLP[l] = gz
            // m = gelu(u) W2ᵀ + b2 ; u = a W1ᵀ + b1
            gemm(dm, rows: R, lda: D, back.ffnOutT[l], out: dinter, ldc: I, epilogue: .none, pool: pool)
            for i in 0..<(R * I) { dinter[i] *= c.u[i] }
            gemm(dinter, rows: R, lda: I, back.inT[l], out: da, ldc: D, epilogue: .biasResidual(dh, ld: D), pool: pool)
            // a = LayerNorm1(g) ; g = ctxMasked W_Oᵀ + b_O + xIn
            layerNormBackward(da, x: c.g, mean: c.gMean, rstd: c.gRstd, gamma: layer.attentionLayerNorm.gamma, rows: R, count: D, dx: dg, pool: pool)
            if let drop = dropAttention[l] {
                let dgDropped = dm   // dm is free until the next layer
                dgDropped.update(from: dg, count: R * D)
                multiply(dgDropped, drop, R * D)
                gemm(dgDropped, rows: R, lda: D, back.outT[l], out: dctx, ldc: D, epilogue: .none, pool: pool)
            } else {
                gemm(dg, rows: R, lda: D, back.outT[l], out: dctx, ldc: D, epilogue: .none, pool: pool)
            }
            // head masks: ctxMasked_h = (ctx_h − avg_h)·z_h + avg_h
            for hd in 0..<H {
                var g = 0.0
                let zh = masks.heads[l][hd]
                for t in 0..<R {
                    let base = t * D + hd * d
                    for e in 0..<d {
                        let centered = c.ctx[base + e] - (avgHead?[(l * H + hd) * d + e] ?? 0)
                        g += Double(dctx[base + e]) * Double(centered)
                        dctx[base + e] *= zh
                    }
                }
                gradHeads[l][hd] = g
            }
            // attention, then the Q/K/V projections; dx ← dg + dqkv · W_qkv. Below layer 0 nothing has a
            // mask, so layer 0's attention and Q/K/V backward would compute a gradient nobody reads.
            if l == 0 { break }
            var dctxAll = dctx, dgAll = dg
            if compact {
                // Back to N rows: only the [CLS] rows have a gradient.
                dctxFull.update(repeating: 0, count: N * D)
                dgFull.update(repeating: 0, count: N * D)
                for s in 0..<B {
                    (dctxFull + batch.offsets[s] * D).update(from: dctx + s * D, count: D)
                    (dgFull + batch.offsets[s] * D).update(from: dg + s * D, count: D)
                }
                dctxAll = dctxFull; dgAll = dgFull
            }
            attentionBackward(qkv: c.qkv, ldqkv: 3 * D, probs: c.probs, dctx: dctxAll, ldctx: D, heads: H, headDim: d,
                              offsets: batch.offsets, dqkv: dqkv, pool: pool)
            gemm(dqkv, rows: N, lda: 3 * D, back.qkvT[l], out: dx, ldc: D, epilogue: .biasResidual(dgAll, ld: D), pool: pool)
        }
        return MaskGradients(heads: gradHeads, mlps: gradMLP, loss: loss)
    }

    /// The transposed weights of the backward pass, built on first use and kept with the model.
    var backwardWeights: BackwardWeights {
        lazyLock.lock()
        defer { lazyLock.unlock() }
        if let w = lazyBackward as? BackwardWeights { return w }
        let w = BackwardWeights(model: self)
        lazyBackward = w
        return w
    }
}

extension ImportanceObjective {
    var isKL: Bool {
        switch self {
        case .kl, .klToProbabilities: return true
        case .crossEntropy: return false
        }
    }
}

extension BertModel {
    /// softmax of the unmasked model's logits, per sequence, in double precision (the KL target). A row
    /// does not depend on which other sequences share the batch (packed rows, fixed summation order).
    public func fullModelProbabilities(_ batch: TokenBatch, pool: ThreadPool = .shared) throws -> [[Double]] {
        let C = config.numLabels
        let full = try forward(batch, pool: pool)
        return (0..<batch.count).map { b in softmaxDouble(Array(full[(b * C)..<((b + 1) * C)])) }
    }
}

func softmaxDouble(_ v: [Float]) -> [Double] {
    let m = Double(v.max() ?? 0)
    let e = v.map { exp(Double($0) - m) }
    let s = e.reduce(0, +)
    return e.map { $0 / s }
}

func logSoftmaxDouble(_ v: [Float]) -> [Double] {
    let m = Double(v.max() ?? 0)
    let lse = m + log(v.reduce(0.0) { $0 + exp(Double($1) - m) })
    return v.map { Double($0) - lse }
}

/// Keeps a copy of the pooler output [B, D] seen during `classify` (the backward needs it for tanh').
final class PooledRecorder: ForwardObserver {
    var values: [Float] = []
    let width: Int
    init(width: Int) { self.width = width }
    func pooled(_ p: UnsafePointer<Float>, sequences: Int) { values = Array(UnsafeBufferPointer(start: p, count: sequences * width)) }
}
