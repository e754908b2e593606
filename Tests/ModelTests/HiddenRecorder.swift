// What ModelTests' golden comparisons share beyond TestSupport: an observer recording hidden states.
import Model

/// Collects embeddings, layer outputs and pooled rows of a forward pass.
final class HiddenRecorder: ForwardObserver {
    var layers: [[Float]] = []
    var pooled: [Float] = []
    let dim: Int
    init(dim: Int) { self.dim = dim }
    func embeddings(_ x: UnsafePointer<Float>, tokens: Int) {
        layers = [Array(UnsafeBufferPointer(start: x, count: tokens * dim))]
    }
    func layerOutput(layer: Int, _ x: UnsafePointer<Float>, tokens: Int) {
        layers.append(Array(UnsafeBufferPointer(start: x, count: tokens * dim)))
    }
    func pooled(_ p: UnsafePointer<Float>, sequences: Int) {
        pooled += Array(UnsafeBufferPointer(start: p, count: sequences * dim))
    }
}
