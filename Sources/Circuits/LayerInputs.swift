// The recorder and editor path patching runs on: a ForwardObserver that keeps every layer's input, its
// pre-mask head contexts and its MLP outputs, may rewrite contexts and MLP outputs (the interventions), and
// records or imposes the LayerNorms' per-token scales (frozen LayerNorms).
import Foundation
import Kernels
import Model

final class LayerInputs: ForwardObserver {
    var inputs: [[Float]] = []  // [L][N·D]; the embedding output first
    var contexts: [[Float]] = []  // [L][N·D]
    var mlpOutputs: [Int: [Float]] = [:]  // layer → [N·D]
    var pooledOutput: [Float] = []  // [B·D], after tanh
    let D: Int
    typealias Edit = (_ layer: Int, _ values: UnsafeMutablePointer<Float>, _ tokens: Int) -> Void
    let edit: Edit?
    let editMLP: Edit?
    let recordScales: Bool
    /// Keep inputs, contexts, MLP outputs and the pooled output (off for runs that only intervene).
    let recording: Bool
    let frozenScales: LayerInputs?
    /// The batch's [CLS] rows: a pass whose last layer runs those rows alone (`.cls`, `.firstQuery`) gets the
    /// frozen scales of just them there.
    var clsRows: [Int]?
    private var scales: [Int: UnsafeMutablePointer<Float>] = [:]  // layer·2 + site → [N]
    private var scaleRows: [Int: Int] = [:]
    private var gathered: [Int: UnsafeMutablePointer<Float>] = [:]

    init(
        D: Int, recording: Bool = true, recordScales: Bool = false, frozenScales: LayerInputs? = nil,
        editMLP: Edit? = nil, edit: Edit? = nil
    ) {
        (self.D, self.recording, self.recordScales, self.frozenScales, self.edit, self.editMLP) = (
            D, recording, recordScales, frozenScales, edit, editMLP
        )
    }
    deinit { for s in Array(scales.values) + Array(gathered.values) { s.deallocate() } }
    func embeddings(_ x: UnsafePointer<Float>, tokens: Int) {
        guard recording else { return }
        inputs = [Array(UnsafeBufferPointer(start: x, count: tokens * D))]
        contexts = []
        mlpOutputs = [:]
    }
    func layerOutput(layer: Int, _ x: UnsafePointer<Float>, tokens: Int) {
        guard recording else { return }
        inputs.append(Array(UnsafeBufferPointer(start: x, count: tokens * D)))
    }
    func attentionContext(layer: Int, _ ctx: UnsafePointer<Float>, tokens: Int) {
        guard recording else { return }
        contexts.append(Array(UnsafeBufferPointer(start: ctx, count: tokens * D)))
    }
    func editContext(layer: Int, _ ctx: UnsafeMutablePointer<Float>, tokens: Int) { edit?(layer, ctx, tokens) }
    func mlpOutput(layer: Int, _ m: UnsafePointer<Float>, tokens: Int) {
        guard recording else { return }
        mlpOutputs[layer] = Array(UnsafeBufferPointer(start: m, count: tokens * D))
    }
    func editMLPOutput(layer: Int, _ m: UnsafeMutablePointer<Float>, tokens: Int) { editMLP?(layer, m, tokens) }
    func pooled(_ p: UnsafePointer<Float>, sequences: Int) {
        guard recording else { return }
        pooledOutput = Array(UnsafeBufferPointer(start: p, count: sequences * D))
    }
    /// The per-token 1/σ a recording run kept for layer `layer`'s LayerNorm `site`.
    func recordedScales(layer: Int, site: Int) -> UnsafeMutablePointer<Float>? { scales[layer * 2 + site] }
    func layerNormScales(layer: Int, site: Int, tokens: Int) -> LayerNormScales? {
        let key = layer * 2 + site
        if let frozen = frozenScales, let p = frozen.scales[key] {
            if frozen.scaleRows[key] == tokens { return .fixed(p) }
            if let rows = clsRows, rows.count == tokens {
                if gathered[key] == nil { gathered[key] = allocateFloats(tokens) }
                for (i, r) in rows.enumerated() { gathered[key]![i] = p[r] }
                return .fixed(gathered[key]!)
            }
        }
        guard recordScales else { return nil }
        if scaleRows[key] != tokens {
            scales[key]?.deallocate()
            scales[key] = allocateFloats(tokens)
            scaleRows[key] = tokens
        }
        return .record(scales[key]!)
    }
}
