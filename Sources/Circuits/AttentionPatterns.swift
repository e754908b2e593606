// Attention patterns: every head's softmax(QKᵀ/√d) of every layer, for looking at what heads attend to
// (`hcore circuits attention`): the inference pass keeping its probabilities, read through the observer hook.
import Kernels
import Model

extension BertModel {
    /// Per layer, the probabilities of every sequence and head: sequence s, head h, query i, key j at
    /// attentionProbOffsets(offsets, heads)[s] + (h·T_s + i)·T_s + j.
    public func attentionPatterns(_ batch: TokenBatch, pool: ThreadPool = .shared) throws -> [[Float]] {
        try validate(batch)
        let recorder = PatternRecorder()
        let request = try self.request(nil, nil, recorder, lastLayer: .all)
        withArena { arena in
            let table = ActivationTable(
                arena: arena, batch: batch, shape: parameters.shape, layers: layerCount, probabilities: true)
            let p = parameters.context(batch, request, table, arena: arena, pool: pool)
            parameters.embeddingsForward(batch, table, observer: nil, pool: pool)
            parameters.encoderForward(table.x, request, table, p, range: 0..<layerCount, fromEmbeddings: true)
        }
        return recorder.layers
    }
}

/// Copies each layer's probabilities as the pass reaches it.
final class PatternRecorder: ForwardObserver {
    var layers: [[Float]] = []
    func attentionProbabilities(layer: Int, _ probs: UnsafePointer<Float>, count: Int) {
        layers.append(Array(UnsafeBufferPointer(start: probs, count: count)))
    }
}
