// Which units of the model exist in one forward pass.
//
// The full model's plan points at the model's own packed weights. A subnetwork's plan (binary masks)
// is compiled: kept heads' Q/K/V rows and W_O columns gathered into compact packed matrices, every
// pruned head's constant contribution W_O·avg_h folded into the output bias, a pruned MLP replaced by
// its constant, a layer without heads skipping attention entirely. Pruned work is then not done at all.
import Foundation
import Kernels

public final class LayerPlan: @unchecked Sendable {
    /// Indices of the heads that run, ascending.
    public let keptHeads: [Int]
    /// Q/K/V rows of the kept heads, [3·kept·d, D]; nil when no head is kept.
    public let qkv: PackedLinear?
    /// W_O columns of the kept heads, [D, kept·d], bias with pruned heads' constants folded in.
    public let attentionOutput: PackedLinear?
    /// When no head is kept: b_O + Σ_h W_O[:, h]·avg_h, added to the residual. [D]
    public let attentionConstant: [Float]?
    /// When the MLP is pruned: its constant output (avg_mlp or zeros). [D]
    public let mlpConstant: [Float]?

    public init(
        keptHeads: [Int], qkv: PackedLinear?, attentionOutput: PackedLinear?, attentionConstant: [Float]?,
        mlpConstant: [Float]?
    ) {
        self.keptHeads = keptHeads
        self.qkv = qkv
        self.attentionOutput = attentionOutput
        self.attentionConstant = attentionConstant
        self.mlpConstant = mlpConstant
    }

    /// The weights of `firstQueryAttention` (the last layer when only the [CLS] rows are needed): W_Q's rows
    /// packed for the [CLS] rows' queries, W_K [kept·d, D] row-major, W_Vᵀ [D, kept·d] and b_V.
    public struct FirstQueryWeights: @unchecked Sendable {
        public let query: PackedLinear
        public let key: [Float]
        public let valueT: [Float]
        public let valueBias: [Float]?
    }

    private let firstQueryLock = NSLock()
    private var firstQuery: FirstQueryWeights?

    /// Made from `qkv` on first use and kept (≈ the size of `qkv`; the K/V rows' packed copy is not needed).
    public func firstQueryWeights(features D: Int) -> FirstQueryWeights? {
        guard let qkv else { return nil }
        firstQueryLock.lock()
        defer { firstQueryLock.unlock() }
        if let firstQuery { return firstQuery }
        let width = qkv.n / 3
        let key = (0..<(width * D)).map { qkv.weight(width + $0 / D, $0 % D) }
        var valueT = [Float](repeating: 0, count: D * width)
        for o in 0..<width { for i in 0..<D { valueT[i * width + o] = qkv.weight(2 * width + o, i) } }
        let made = FirstQueryWeights(
            query: qkv.gatherRows(Array(0..<width)), key: key, valueT: valueT,
            valueBias: qkv.biasArray.map { Array($0[(2 * width)...]) })
        firstQuery = made
        return made
    }
}

public final class ExecutionPlan: @unchecked Sendable {
    public let layers: [LayerPlan]

    public init(layers: [LayerPlan]) {
        self.layers = layers
    }
}

extension BertModel {
    /// Every head and MLP present, on the model's own weights (no copy); a physically pruned model's absent heads skipped.
    /// Made once and kept, so what a plan builds on first use (`firstQueryWeights`) is built once per model.
    public var fullPlan: ExecutionPlan {
        lazyLock.lock()
        defer { lazyLock.unlock() }
        if let lazyFullPlan { return lazyFullPlan }
        var plan = ExecutionPlan(
            layers: layers.map {
                LayerPlan(
                    keptHeads: Array(0..<headCount), qkv: $0.qkv, attentionOutput: $0.attentionOutput,
                    attentionConstant: nil, mlpConstant: nil)
            })
        // A physically pruned model (config pruned_heads): the plan skips the absent heads, whose context is 0.
        if !config.prunedHeads.isEmpty {
            var masks = MaskValues.ones(layers: layerCount, heads: headCount)
            for (l, hs) in config.prunedHeads { for h in hs { masks.heads[l][h] = 0 } }
            if let compiled = try? ExecutionPlan.compile(model: self, masks: masks, ablation: .zero) { plan = compiled }
        }
        lazyFullPlan = plan
        return plan
    }
}
