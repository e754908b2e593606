// Hooks on the one forward composition (TransformerLens's hook points): an observer sees intermediate
// activations — hidden states, mean activations, attention patterns — and may intervene on the attention
// context, the MLP output and the LayerNorm scales (path patching). Pointers are valid only during the call; rows are the
// batch's tokens, concatenated. A pass whose last layer runs its [CLS] rows alone (`LayerRows.cls`,
// `.firstQuery`) shows that layer's hooks after attention only those B rows, and with `.firstQuery` no context.
import Kernels

public protocol ForwardObserver: AnyObject {
    /// Embedding output after LayerNorm (and dropout in training mode), [N, D].
    func embeddings(_ x: UnsafePointer<Float>, tokens: Int)
    /// Attention probabilities of every sequence and head (Kernels' `attentionProbOffsets` layout), when the pass
    /// keeps them (every head present).
    func attentionProbabilities(layer: Int, _ probs: UnsafePointer<Float>, count: Int)
    /// Per-head attention context before any mask, [N, H·d] (only with every head present).
    func attentionContext(layer: Int, _ ctx: UnsafePointer<Float>, tokens: Int)
    /// May rewrite the per-head context [N, H·d] before masks and W_O (only with every head present):
    /// interventions such as path patching (Circuits/PathPatching.swift).
    func editContext(layer: Int, _ ctx: UnsafeMutablePointer<Float>, tokens: Int)
    /// MLP output m (second dense + bias) before mask and residual, [N, D].
    func mlpOutput(layer: Int, _ m: UnsafePointer<Float>, tokens: Int)
    /// May rewrite the MLP output m [N, D] before mask and residual (path patching's MLP senders).
    func editMLPOutput(layer: Int, _ m: UnsafeMutablePointer<Float>, tokens: Int)
    /// Layer output after the final LayerNorm, [N, D].
    func layerOutput(layer: Int, _ x: UnsafePointer<Float>, tokens: Int)
    /// Pooler output, [B, D].
    func pooled(_ p: UnsafePointer<Float>, sequences: Int)
    /// What layer `layer`'s LayerNorm `site` (0: attention.output.LayerNorm, 1: output.LayerNorm) does with its
    /// per-token scales 1/σ [N]: record them, or use the given ones (path patching with frozen LayerNorms).
    func layerNormScales(layer: Int, site: Int, tokens: Int) -> LayerNormScales?
}

extension ForwardObserver {
    public func embeddings(_ x: UnsafePointer<Float>, tokens: Int) {}
    public func attentionProbabilities(layer: Int, _ probs: UnsafePointer<Float>, count: Int) {}
    public func attentionContext(layer: Int, _ ctx: UnsafePointer<Float>, tokens: Int) {}
    public func editContext(layer: Int, _ ctx: UnsafeMutablePointer<Float>, tokens: Int) {}
    public func mlpOutput(layer: Int, _ m: UnsafePointer<Float>, tokens: Int) {}
    public func editMLPOutput(layer: Int, _ m: UnsafeMutablePointer<Float>, tokens: Int) {}
    public func layerOutput(layer: Int, _ x: UnsafePointer<Float>, tokens: Int) {}
    public func pooled(_ p: UnsafePointer<Float>, sequences: Int) {}
    public func layerNormScales(layer: Int, site: Int, tokens: Int) -> LayerNormScales? { nil }
}
