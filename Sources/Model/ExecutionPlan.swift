// Which units of the model exist in one forward pass.
//
// The full model's plan points at the model's own packed weights. A subnetwork's plan (binary masks)
// is compiled: kept heads' Q/K/V rows and W_O columns gathered into compact packed matrices, every
// pruned head's constant contribution W_O·avg_h folded into the output bias, a pruned MLP replaced by
// its constant (MeanAblation.swift), a layer without heads skipping attention entirely. Pruned work is then
// not done at all.
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
        attentionConstantRow = attentionConstant.map(PinnedRow.init)
        mlpConstantRow = mlpConstant.map(PinnedRow.init)
    }

    /// The two constants at addresses that live as long as the plan (for LayerNorm chains).
    let attentionConstantRow, mlpConstantRow: PinnedRow?

    /// The weights of `firstQueryAttention` (the last layer when only the [CLS] rows are needed): W_Q's rows
    /// packed for the [CLS] rows' queries, W_K [kept·d, D] row-major, W_Vᵀ [D, kept·d] and b_V.
    public struct FirstQueryWeights: @unchecked Sendable {
        public let query: PackedLinear
        public let key: [Float]
        public let valueT: [Float]
        public let valueBias: [Float]?
    }

    /// Where the kept heads' attention probabilities sit in a layout of all `heads` (nil: every head kept).
    func probabilitySlots(heads: Int) -> ProbabilitySlots? {
        keptHeads.count == heads ? nil : ProbabilitySlots(perSequence: heads, slot: keptHeads)
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

extension LayerPlan {
    /// Layer `l` running only the heads `kept` (ascending): every other head's ablation value folded into W_O's bias
    /// (MeanAblation.swift), their Q/K/V rows and W_O columns gathered out; the model's own weights when every head
    /// is kept, no attention at all when none is.
    static func keeping(
        _ kept: [Int], of model: BertModel, layer l: Int, ablation: Ablation, mlpConstant: [Float]?
    ) -> LayerPlan {
        let (H, d) = (model.headCount, model.headDim)
        let layer = model.layers[l]
        if kept.count == H {
            return LayerPlan(
                keptHeads: kept, qkv: layer.qkv, attentionOutput: layer.attentionOutput, attentionConstant: nil,
                mlpConstant: mlpConstant)
        }
        let pruned = (0..<H).filter { !kept.contains($0) }
        let bias = ablation.foldedOutputBias(layer.attentionOutput, layer: l, pruned: pruned, heads: H, headDim: d)
        if kept.isEmpty {
            return LayerPlan(
                keptHeads: [], qkv: nil, attentionOutput: nil, attentionConstant: bias, mlpConstant: mlpConstant)
        }
        let rows = headRows(kept, headDim: d)
        return LayerPlan(
            keptHeads: kept, qkv: layer.qkv.gatherRows(qkvRows(rows, hidden: model.hidden)),
            attentionOutput: layer.attentionOutput.gatherColumns(rows, bias: bias), attentionConstant: nil,
            mlpConstant: mlpConstant)
    }

    /// The context columns of `heads` (W_O's input columns; each head's rows of W_Q, W_K and W_V).
    static func headRows(_ heads: [Int], headDim d: Int) -> [Int] { heads.flatMap { h in (h * d)..<((h + 1) * d) } }

    /// The packed Q/K/V weight's rows of the context columns `headRows`: their Q rows, then K, then V.
    static func qkvRows(_ headRows: [Int], hidden D: Int) -> [Int] {
        headRows + headRows.map { $0 + D } + headRows.map { $0 + 2 * D }
    }
}

extension ExecutionPlan {
    /// Compiles binary masks into a plan that computes only kept units (the mean-ablation fold:
    /// MeanAblation.swift). Throws for non-binary masks.
    public static func compile(model: BertModel, masks: MaskValues, ablation: Ablation) throws -> ExecutionPlan {
        try model.checkMasks(masks, ablation)
        guard masks.isBinary else {
            throw ModelError.badInput(
                "a compiled plan needs binary masks (0 or 1); use the general path for fractional masks")
        }
        let (H, D) = (model.headCount, model.hidden)
        return ExecutionPlan(
            layers: model.layers.indices.map { l in
                LayerPlan.keeping(
                    (0..<H).filter { masks.heads[l][$0] == 1 }, of: model, layer: l, ablation: ablation,
                    mlpConstant: masks.mlps[l] == 0 ? ablation.mlpConstant(layer: l, hidden: D) : nil)
            })
    }

    /// Multiply-adds of one token through the encoder under this plan, excluding attention's T-dependent
    /// part (see `flops(model:sequenceLengths:)`).
    public func denseMACsPerToken(model: BertModel) -> Int {
        let D = model.hidden
        let I = model.config.intermediateSize
        let d = model.headDim
        var macs = 0
        for lp in layers {
            let k = lp.keptHeads.count * d
            macs += 3 * k * D + k * D
            if lp.mlpConstant == nil { macs += 2 * D * I }
        }
        return macs
    }

    /// FLOPs (2 × multiply-adds) of the encoder on sequences of the given lengths: dense layers plus
    /// attention's QKᵀ and PV products for kept heads. `clsOnlyLastLayer`: count the work hcore actually
    /// does when only logits are needed (the last layer's K/V for every token, the rest for [CLS] rows).
    public func flops(model: BertModel, sequenceLengths: [Int], clsOnlyLastLayer: Bool = false) -> Double {
        model.flops(
            keptHeads: layers.map { $0.keptHeads.count }, mlps: layers.map { $0.mlpConstant == nil },
            sequenceLengths: sequenceLengths, clsOnlyLastLayer: clsOnlyLastLayer)
    }
}

extension BertModel {
    /// FLOPs (2 × multiply-adds) of the encoder for a subnetwork (nil: the full model) on sequences of
    /// the given lengths — the same count as `ExecutionPlan.flops`, straight from the masks.
    public func flops(masks: MaskValues?, sequenceLengths: [Int], clsOnlyLastLayer: Bool = false) -> Double {
        flops(
            keptHeads: (0..<layerCount).map { l in masks.map { m in m.heads[l].filter { $0 != 0 }.count } ?? headCount
            },
            mlps: (0..<layerCount).map { l in masks.map { $0.mlps[l] != 0 } ?? true },
            sequenceLengths: sequenceLengths, clsOnlyLastLayer: clsOnlyLastLayer)
    }

    /// FLOPs with `keptHeads[l]` heads and MLP `mlps[l]` present in layer l (see ExecutionPlan.flops).
    public func flops(keptHeads: [Int], mlps: [Bool], sequenceLengths: [Int], clsOnlyLastLayer: Bool = false) -> Double
    {
        let D = hidden
        let I = config.intermediateSize
        let d = headDim
        let tokens = sequenceLengths.reduce(0, +)
        let sequences = sequenceLengths.count
        let squares = sequenceLengths.reduce(0) { $0 + $1 * $1 }
        var macs = 0
        for l in 0..<layerCount {
            let kept = keptHeads[l]
            let mlp = mlps[l]
            if clsOnlyLastLayer && l == layerCount - 1 {
                // firstQueryAttention: scores u_h·x_t and sums Σ p_t x_t over every token, per kept head; per
                // sequence the query, u_h = W_K,hᵀ q_h, W_V,h r_h, W_O and the MLP on the [CLS] row.
                macs += 2 * kept * D * tokens + (4 * kept * d * D + (mlp ? 2 * D * I : 0)) * sequences
            } else {
                macs += (4 * kept * d * D + (mlp ? 2 * D * I : 0)) * tokens + 2 * squares * d * kept
            }
        }
        return 2 * Double(macs)
    }

    /// Bytes a compiled plan of these binary masks allocates beyond the model's own weights.
    public func planBytes(masks: MaskValues) -> Int {
        let D = hidden
        let d = headDim
        let compiled = (0..<layerCount).reduce(0) { acc, l in
            let kept = masks.heads[l].filter { $0 != 0 }.count
            return acc + (kept > 0 && kept < headCount ? 4 * (4 * kept * d * D + 3 * kept * d + D) : 0)
        }
        // The last layer's W_Q (packed, with its bias), W_K and W_Vᵀ (plain) and b_V for [CLS]-only evaluation
        // (LayerPlan.firstQueryWeights), made on first use.
        let lastKept = masks.heads[layerCount - 1].filter { $0 != 0 }.count
        return compiled + 4 * (3 * lastKept * d * D + 2 * lastKept * d)
    }
}
