// Gradients of the pruning objective with respect to the mask values, weights frozen: a driver over the
// blocks (Blocks/): embeddings, each encoder layer's forward keeping its cache, the classifier head, the
// loss, then the head's and each layer's backward, last to first.
//
// Objective (Heuristic-Core's faithfulness term, README of the goldens §5), for a batch of B sequences:
//   kl: loss = (1/B) Σ_b Σ_c p_full[b,c] (log p_full[b,c] − log p_sub[b,c])     (full model unmasked, no grad)
//   ce: loss = (1/B) Σ_b −log p_sub[b, label_b]
// Mask gradients are reductions over tokens:  dz_h = Σ dctx_masked_h ⊙ (ctx_h − avg_h)  (zero ablation: ⊙ ctx_h)
// and dz_mlp = Σ dm_masked ⊙ (m − avg_mlp) (SoftMasks.backward).
// Dropout (`dropout` > 0, the reference trains the subnetwork in training mode) is BERT's hidden dropout where
// the reference's modeling code applies it: after the embeddings, after the attention output projection
// (before the residual), after the MLP's second dense layer (before the mask: m is the dropped output), and
// on the pooled output before the classifier — inverted, masks drawn from SplitMix64(dropoutSeed) in that
// order (embeddings, every layer's attention, every layer's MLP, pooled). `attentionDropout` > 0 adds the
// reference's dropout on the attention probabilities (ctx = Dropout(softmax(QKᵀ/√d)) V), its multipliers drawn
// after those, layer by layer.
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
    let layers: [LayerParameters]
    let head: HeadParameters

    init(model: BertModel) {
        layers = model.layers.map { l in
            LayerParameters(
                qkv: l.qkv, attentionOutput: l.attentionOutput, intermediate: l.intermediate, output: l.output,
                attentionNorm: l.attentionLayerNorm, outputNorm: l.outputLayerNorm)
        }
        head = HeadParameters(pooler: model.pooler, classifier: model.classifier!, transposed: true)
    }
}

extension BertModel {
    /// Loss and d loss / d mask for fixed (continuous) masks on one batch (see the file comment).
    /// `clsOnlyLastLayer`: the last layer after attention runs for the [CLS] rows only (exact: no other row
    /// reaches the classifier).
    public func maskGradients(
        _ batch: TokenBatch, masks: MaskValues, ablation: Ablation, objective: ImportanceObjective = .kl,
        dropout: Float = 0, attentionDropout: Float = 0, dropoutSeed: UInt64 = 0, clsOnlyLastLayer: Bool = true,
        pool: ThreadPool = .shared
    ) throws -> MaskGradients {
        guard let classifier else { throw ModelError.noClassifier(path: folder) }
        try checkMasks(masks, ablation)
        let B = batch.count
        let C = classifier.n
        let N = batch.tokenCount
        let D = hidden
        let I = config.intermediateSize
        let L = layerCount
        let weights = backwardWeights
        let soft = SoftMasks(masks: masks, ablation: ablation)
        let shape = BlockShape(
            offsets: batch.offsets, hidden: D, inner: I, heads: headCount, headDim: headDim, eps: config.layerNormEps)
        // This pass's arena is taken first: the full model's forward (the KL target) then runs on other arenas of
        // the pool, so each keeps buffers of the sizes its own code path asks for (no reallocation per step).
        let arena = takeArena()
        defer { returnArena(arena) }
        let targets = try objectiveTargets(objective, batch: batch, classes: C, pool: pool)
        var rng = SplitMix64(seed: dropoutSeed)
        let dropEmbeddings = dropoutMultipliers(N * D, p: dropout, rng: &rng, arena: arena)
        let dropAttention = (0..<L).map { _ in dropoutMultipliers(N * D, p: dropout, rng: &rng, arena: arena) }
        let dropMLP = (0..<L).map { _ in dropoutMultipliers(N * D, p: dropout, rng: &rng, arena: arena) }
        let dropPooled = dropoutMultipliers(B * D, p: dropout, rng: &rng, arena: arena)
        let probCount = attentionProbOffsets(offsets: batch.offsets, heads: headCount).last!
        let dropProbs = (0..<L).map { _ in dropoutMultipliers(probCount, p: attentionDropout, rng: &rng, arena: arena) }
        let geluOutput = arena.take(N * I)  // nothing reads gelu(u) after a layer's forward: one buffer for all
        let caches = (0..<L).map {
            LayerCache(
                arena: arena, tokens: N, hidden: D, inner: I, probCount: probCount, geluOutput: geluOutput,
                dropAttention: dropAttention[$0], dropMLP: dropMLP[$0], dropProbs: dropProbs[$0])
        }
        let x = arena.take(N * D)
        let xCLS = arena.take(B * D)
        let head = HeadCache(arena: arena, sequences: B, hidden: D)
        try embeddings(batch, into: x, pool: pool)
        multiply(x, by: dropEmbeddings, count: N * D)
        for l in 0..<L {
            encoderLayerForward(
                x, layer: l, weights.layers[l], caches[l], shape: shape, masks: soft,
                compact: clsOnlyLastLayer && l == L - 1, xCLS: xCLS, pool: pool)
        }
        let logits = classifierHeadForward(
            x, offsets: batch.offsets, weights.head, head, hidden: D, drop: dropPooled, pool: pool)
        let (loss, dlogits) = distributionLoss(logits: logits, targets: targets, classes: C, kl: objective.isKL)

        // Backward: the head gives d loss / d cls; the last layer's output gradient is that (compact) or
        // dcls scattered into zero rows; each layer then writes the gradient of its input into dx.
        let dx = arena.take(N * D)
        let dpooled = arena.take(B * D)
        let dcls = arena.take(B * D)
        let scratch = LayerBackwardScratch(arena: arena, tokens: N, hidden: D, inner: I)
        classifierHeadBackward(
            dlogits, weights.head, head, hidden: D, drop: dropPooled, grads: nil, dpooled: dpooled, dcls: dcls,
            pool: pool)
        scatterCLS(dcls, into: dx, offsets: batch.offsets, width: D, zeroOthers: true)
        var heads = [[Double]](repeating: [], count: L)
        var mlps = [Double](repeating: 0, count: L)
        for l in stride(from: L - 1, through: 0, by: -1) {
            let compact = clsOnlyLastLayer && l == L - 1
            // Below layer 0 nothing has a mask: its input gradient would be computed for nobody.
            let g = encoderLayerBackward(
                compact ? dcls : dx, layer: l, weights.layers[l], caches[l], shape: shape, masks: soft,
                compact: compact, scratch: scratch, grads: nil, dx: l == 0 ? nil : dx, pool: pool)!
            (heads[l], mlps[l]) = (g.heads, g.mlp)
        }
        return MaskGradients(heads: heads, mlps: mlps, loss: loss)
    }

    /// The target distributions [B·C] of an objective (the full model's, given ones, or one-hot labels).
    func objectiveTargets(_ objective: ImportanceObjective, batch: TokenBatch, classes C: Int, pool: ThreadPool) throws
        -> [Double]
    {
        let B = batch.count
        switch objective {
        case .kl:
            return try fullModelProbabilities(batch, pool: pool).flatMap { $0 }
        case .klToProbabilities(let p):
            guard p.count == B * C else {
                throw ModelError.badInput("klToProbabilities needs \(B * C) probabilities, got \(p.count)")
            }
            return p
        case .crossEntropy(let labels):
            guard labels.count == B, labels.allSatisfy({ (0..<C).contains($0) }) else {
                throw ModelError.badInput("cross-entropy needs one label in 0..<\(C) per sequence")
            }
            return oneHot(labels, classes: C)
        }
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

    /// softmax of the unmasked model's logits, per sequence, in double precision (the KL target). A row
    /// does not depend on which other sequences share the batch (packed rows, fixed summation order).
    public func fullModelProbabilities(_ batch: TokenBatch, pool: ThreadPool = .shared) throws -> [[Double]] {
        let C = config.numLabels
        let full = try forward(batch, pool: pool)
        return (0..<batch.count).map { b in softmaxDouble(Array(full[(b * C)..<((b + 1) * C)])) }
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
