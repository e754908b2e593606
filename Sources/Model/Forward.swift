// The model's inference entry points, each one call of the composition in BertPass.swift: logits, hidden
// states, layers from a given input, and the full model's output distribution (the KL target of pruning).
//
// Which rows the last layer runs (`LayerRows`): only logits need only the [CLS] rows; `.firstQuery` computes them
// without forming keys or values (~99% of the last layer's work saved at bert-base's T = 128; logits equal the
// every-row path's to rounding, ~5e-7, tested); `.cls` runs attention over every row and gathers the [CLS] rows
// after it, the arithmetic of every backward; `.all` every row (observers, hidden-state dumps).
import Checkpoint
import Foundation
import Kernels

/// The last layer's rows when only logits are needed: `.firstQuery`, or `.all` with HCORE_ALL_ROWS=1 (to time
/// like with like against peers).
public let defaultLastLayer: LayerRows = ModelSettings.allRows ? .all : .firstQuery

extension BertModel {
    /// Checks ids, token types and lengths against the model before anything runs.
    public func validate(_ batch: TokenBatch) throws { try config.validate(batch) }

    /// Logits [B, C] for a batch. `plan` (default: the whole model) decides which units exist; `soft` applies
    /// continuous masks (on the full plan). With an observer every row of the last layer runs.
    public func forward(
        _ batch: TokenBatch, plan: ExecutionPlan? = nil, soft: (masks: MaskValues, ablation: Ablation)? = nil,
        observer: ForwardObserver? = nil, lastLayer: LayerRows? = nil, pool: ThreadPool = .shared
    ) throws -> [Float] {
        guard classifier != nil else { throw ModelError.noClassifier(path: folder) }
        try validate(batch)
        let request = try self.request(
            plan, soft, observer, lastLayer: observer == nil ? lastLayer ?? defaultLastLayer : .all)
        return withArena { arena in
            let table = ActivationTable(arena: arena, batch: batch, shape: parameters.shape, layers: layerCount)
            return parameters.forward(batch, request, table, arena: arena, pool: pool)
        }
    }

    /// Pooler and classifier on final hidden states [N, D].
    public func logits(
        fromHidden x: UnsafePointer<Float>, batch: TokenBatch, observer: ForwardObserver? = nil,
        pool: ThreadPool = .shared
    ) throws -> [Float] {
        guard classifier != nil else { throw ModelError.noClassifier(path: folder) }
        return withArena { arena in
            let table = ActivationTable(arena: arena, batch: batch, shape: parameters.shape, layers: layerCount)
            return parameters.headForward(x, table, batch: batch, observer: observer, pool: pool)
        }
    }

    /// Runs embeddings and every layer; returns the final hidden states [N, D] (caller deallocates).
    public func encode(
        _ batch: TokenBatch, plan: ExecutionPlan? = nil, soft: (masks: MaskValues, ablation: Ablation)? = nil,
        observer: ForwardObserver? = nil, pool: ThreadPool = .shared
    ) throws -> UnsafeMutablePointer<Float> {
        try validate(batch)
        let request = try self.request(plan, soft, observer, lastLayer: .all)
        let x = allocateFloats(batch.tokenCount * hidden)
        withArena { arena in
            let table = ActivationTable(arena: arena, batch: batch, shape: parameters.shape, layers: layerCount)
            let p = parameters.context(batch, request, table, arena: arena, pool: pool)
            parameters.embeddingsForward(batch, table, observer: observer, pool: pool)
            parameters.encoderForward(table.x, request, table, p, range: 0..<layerCount, fromEmbeddings: true)
            x.update(from: table.x, count: batch.tokenCount * hidden)
        }
        return x
    }

    /// The embedding output [N, D] of a batch, written into x.
    public func embeddings(_ batch: TokenBatch, into x: UnsafeMutablePointer<Float>, pool: ThreadPool = .shared) throws
    {
        try validate(batch)
        withArena { arena in
            let table = ActivationTable(arena: arena, batch: batch, shape: parameters.shape, layers: layerCount)
            parameters.embeddingsForward(batch, table, observer: nil, pool: pool)
            x.update(from: table.x, count: batch.tokenCount * hidden)
        }
    }

    /// Runs layers `range` on hidden states `x` [N, D] in place; `afterLayer(l, x)` sees each layer's output
    /// (prefix sharing keeps copies of them). With `lastLayer` other than `.all`, the other rows of `x` hold the
    /// last layer's *input* afterwards. `xHoldsEmbeddings`: x is the embedding output of `batch` (range starts at
    /// 0), so layer 0 computes Q/K/V once per distinct (token, position, type) row.
    public func runLayers(
        _ x: UnsafeMutablePointer<Float>, batch: TokenBatch, range: Range<Int>, plan: ExecutionPlan? = nil,
        soft: (masks: MaskValues, ablation: Ablation)? = nil, observer: ForwardObserver? = nil,
        lastLayer: LayerRows = .all, xHoldsEmbeddings: Bool = false, pool: ThreadPool = .shared,
        afterLayer: ((Int, UnsafePointer<Float>) -> Void)? = nil
    ) throws {
        let request = try self.request(plan, soft, observer, lastLayer: lastLayer)
        withArena { arena in
            let table = ActivationTable(arena: arena, batch: batch, shape: parameters.shape, layers: layerCount)
            let p = parameters.context(batch, request, table, arena: arena, pool: pool)
            parameters.encoderForward(
                x, request, table, p, range: range, fromEmbeddings: xHoldsEmbeddings && range.lowerBound == 0,
                afterLayer: afterLayer)
        }
    }

    /// softmax of the unmasked model's logits per sequence, in Double: the KL target of pruning and importance.
    /// Its last layer runs as every backward runs (`.cls`), so a masked pass with every mask at 1 reproduces it
    /// bit for bit. A row does not depend on which other sequences share the batch.
    public func fullModelProbabilities(_ batch: TokenBatch, pool: ThreadPool = .shared) throws -> [[Double]] {
        let C = config.numLabels
        let full = try forward(batch, lastLayer: .cls, pool: pool)
        return (0..<batch.count).map { b in softmaxDouble(Array(full[(b * C)..<((b + 1) * C)])) }
    }

    /// A pass's request, with masks checked against the model.
    package func request(
        _ plan: ExecutionPlan?, _ soft: (masks: MaskValues, ablation: Ablation)?, _ observer: ForwardObserver?,
        lastLayer: LayerRows
    ) throws -> PassRequest {
        if let soft { try checkMasks(soft.masks, soft.ablation) }
        return PassRequest(
            plan: plan ?? fullPlan, masks: soft.map { SoftMasks(masks: $0.masks, ablation: $0.ablation) },
            observer: observer, lastLayer: lastLayer)
    }

    public func checkMasks(_ masks: MaskValues, _ ablation: Ablation) throws {
        guard masks.heads.count == layerCount, masks.heads.allSatisfy({ $0.count == headCount }),
            masks.mlps.count == layerCount
        else {
            throw ModelError.mismatch(
                "mask shape: expected heads [\(layerCount)][\(headCount)] and mlps [\(layerCount)], got heads \(masks.heads.map(\.count)) and mlps [\(masks.mlps.count)]"
            )
        }
        for v in masks.heads.joined() + masks.mlps where !(v >= 0 && v <= 1) {
            throw ModelError.mismatch("mask value \(v) is outside [0, 1]")
        }
        if case .mean(let avg) = ablation {
            try checkActivations(avg)
        }
    }

    public func checkActivations(_ avg: MeanActivations) throws {
        guard avg.avgHead.count == layerCount * headCount * headDim, avg.avgMLP.count == layerCount * hidden else {
            throw ModelError.mismatch(
                "mean activations have avg_head of \(avg.avgHead.count) values and avg_mlp of \(avg.avgMLP.count); this model needs [\(layerCount), \(headCount), \(headDim)] and [\(layerCount), \(hidden)]"
            )
        }
        if let f = avg.fingerprint, f != fingerprint {
            throw ModelError.mismatch(
                "mean activations were computed for model \(f), not this one (\(fingerprint)); compute them for this model"
            )
        }
    }
}
