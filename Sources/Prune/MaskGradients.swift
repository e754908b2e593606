// Gradients of the pruning objective with respect to the mask values, weights frozen: one forward of the
// composition (BertPass.swift) in training mode, the loss, then its backward.
//
// Objective (Heuristic-Core's faithfulness term, README of the goldens §5), for a batch of B sequences:
//   kl: loss = (1/B) Σ_b Σ_c p_full[b,c] (log p_full[b,c] − log p_sub[b,c])     (full model unmasked, no grad)
//   ce: loss = (1/B) Σ_b −log p_sub[b, label_b]
// Mask gradients are reductions over tokens:  dz_h = Σ dctx_masked_h ⊙ (ctx_h − avg_h)  (zero ablation: ⊙ ctx_h)
// and dz_mlp = Σ dm_masked ⊙ (m − avg_mlp) (SoftMasks.backward).
// Dropout (`dropout` > 0, the reference trains the subnetwork in training mode) is BERT's hidden dropout where
// the reference's modeling code applies it: after the embeddings, after the attention output projection
// (before the residual), after the MLP's second dense layer (before the mask: m is the dropped output), and
// on the pooled output before the classifier — inverted, masks drawn from SplitMix64(dropoutSeed) in the
// composition's order. `attentionDropout` > 0 adds the reference's dropout on the attention probabilities
// (ctx = Dropout(softmax(QKᵀ/√d)) V).
import Foundation
import Kernels
import Model

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

extension BertModel {
    /// Loss and d loss / d mask for fixed (continuous) masks on one batch (see the file comment): one forward of
    /// the composition in training mode, keeping what its backward reads, then its backward.
    /// `lastLayer`: `.cls` runs the last layer after attention for the [CLS] rows only (exact: no other row
    /// reaches the classifier), as the KL target (`fullModelProbabilities`) does, so with every mask at 1 and no
    /// dropout the loss is exactly 0.
    /// `needed`: the units (store order) whose gradient the caller uses; a unit at mask 0 outside it is skipped
    /// in the forward and the backward (Model/GatePlan.swift) and every unit outside it is returned as 0.
    public func maskGradients(
        _ batch: TokenBatch, masks: MaskValues, ablation: Ablation, objective: ImportanceObjective = .kl,
        dropout: Float = 0, attentionDropout: Float = 0, dropoutSeed: UInt64 = 0, lastLayer: LayerRows = .cls,
        needed: [Bool]? = nil, pool: ThreadPool = .shared
    ) throws -> MaskGradients {
        guard let classifier else { throw ModelError.noClassifier(path: folder) }
        precondition(lastLayer != .firstQuery, "a backward needs keys and values")
        try validate(batch)
        var request = try self.request(nil, (masks, ablation), nil, lastLayer: lastLayer)
        var backwardWeights = self.backwardWeights
        if let needed {
            guard needed.count == masks.unitCount else {
                throw ModelError.badInput("needed has \(needed.count) units; the model has \(masks.unitCount)")
            }
            let (L, H) = (layerCount, headCount)
            let needs = GradientNeeds(
                heads: (0..<L).map { l in Array(needed[(l * H)..<((l + 1) * H)]) }, mlps: Array(needed[(L * H)...]))
            (request.plan, backwardWeights) = StageTimer.shared.measure("gate plan") {
                gatePlan(masks: masks, ablation: ablation, needs: needs, pool: pool)
            }
            request.masks?.needs = needs
        }
        let mode = TrainingMode(
            dropout: dropout, attentionDropout: attentionDropout, seed: dropoutSeed, weightGradients: false)
        // This pass's arena is taken first: the full model's forward (the KL target) then runs on another arena of
        // the pool, so each keeps buffers of the sizes its own code path asks for (no reallocation per step).
        return try withArena { arena in
            let targets = try objectiveTargets(objective, batch: batch, classes: classifier.n, pool: pool)
            let table = StageTimer.shared.measure("dropout draws") {
                ActivationTable(
                    arena: arena, batch: batch, shape: parameters.shape, layers: layerCount, training: mode,
                    reading: request)
            }
            let logits = parameters.forward(batch, request, table, arena: arena, pool: pool)
            let (loss, dlogits) = distributionLoss(
                logits: logits, targets: targets, classes: classifier.n, kl: objective.isKL)
            let g = parameters.backward(
                dlogits, batch, request, table, backwardWeights, grads: nil, arena: arena, pool: pool)!
            return MaskGradients(heads: g.map(\.heads), mlps: g.map(\.mlp), loss: loss)
        }
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
}

extension ImportanceObjective {
    var isKL: Bool {
        switch self {
        case .kl, .klToProbabilities: return true
        case .crossEntropy: return false
        }
    }
}
