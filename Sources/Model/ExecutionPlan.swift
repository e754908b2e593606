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

    public init(keptHeads: [Int], qkv: PackedLinear?, attentionOutput: PackedLinear?, attentionConstant: [Float]?, mlpConstant: [Float]?) {
        self.keptHeads = keptHeads
        self.qkv = qkv
        self.attentionOutput = attentionOutput
        self.attentionConstant = attentionConstant
        self.mlpConstant = mlpConstant
    }

    private let splitLock = NSLock()
    private var split: (query: PackedLinear, keyValue: PackedLinear)?

    /// `qkv` cut into its Q rows [kept·d, D] and its K/V rows [2·kept·d, D], made on first use (the last
    /// layer when only the [CLS] rows are needed: keys and values for every token, queries for [CLS]).
    /// Same weight rows, so every product is rounded exactly as through `qkv`.
    public func queryAndKeyValue() -> (query: PackedLinear, keyValue: PackedLinear)? {
        guard let qkv else { return nil }
        splitLock.lock()
        defer { splitLock.unlock() }
        if let split { return split }
        let width = qkv.n / 3
        let made = (qkv.gatherRows(Array(0..<width)), qkv.gatherRows(Array(width..<(3 * width))))
        split = made
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
    /// Every head and MLP present, on the model's own weights (no copy).
    public var fullPlan: ExecutionPlan {
        ExecutionPlan(layers: layers.map {
            LayerPlan(keptHeads: Array(0..<headCount), qkv: $0.qkv, attentionOutput: $0.attentionOutput,
                      attentionConstant: nil, mlpConstant: nil)
        })
    }
}
