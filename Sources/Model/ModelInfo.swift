// `hcore info`: what a model folder holds — architecture, sizes, labels, parameters, fingerprint — as JSON
// for scripts and as aligned lines for people.
import Checkpoint
import Kernels

extension BertModel {
    public var infoJSON: JSONValue {
        let c = config
        let packed = layers.reduce(0) {
            $0 + $1.qkv.byteCount + $1.attentionOutput.byteCount + $1.intermediate.byteCount + $1.output.byteCount
        }
        return .object([
            ("model", .string(folder)), ("weights", .string(weightsPath)), ("fingerprint", .string(fingerprint)),
            ("architecture", .string(classifier == nil ? "BertModel" : "BertForSequenceClassification")),
            ("layers", .int(c.numHiddenLayers)), ("heads", .int(c.numAttentionHeads)), ("head_dim", .int(c.headDim)),
            ("hidden", .int(c.hiddenSize)), ("intermediate", .int(c.intermediateSize)),
            ("vocab", .int(c.vocabSize)), ("max_positions", .int(c.maxPositionEmbeddings)),
            ("layer_norm_eps", .float32(c.layerNormEps)), ("labels", .array(c.labels.map { .string($0) })),
            ("parameters", .int(parameterCount)),
            ("prunable_units", .int(c.numHiddenLayers * (c.numAttentionHeads + 1))),
            ("packed_encoder_bytes", .int(packed)),
            ("simd", .string("\(GemmVec.scalarCount)-wide, micro-kernel \(gemmMR)×\(gemmNR)")),
        ])
    }

    public var infoText: String {
        let c = config
        return """
            model         \(folder)
            weights       \(weightsPath)
            fingerprint   \(fingerprint)
            architecture  \(classifier == nil ? "BertModel (no classifier)" : "BertForSequenceClassification")
            encoder       \(c.numHiddenLayers) layers × \(c.numAttentionHeads) heads (head dim \(c.headDim)), hidden \(c.hiddenSize), intermediate \(c.intermediateSize)
            embeddings    vocab \(c.vocabSize), \(c.maxPositionEmbeddings) positions, \(c.typeVocabSize) token types, LayerNorm eps \(c.layerNormEps)
            labels        \(c.labels.enumerated().map { "\($0.offset)=\($0.element)" }.joined(separator: ", "))
            parameters    \(parameterCount)
            prunable      \(c.numHiddenLayers * c.numAttentionHeads) heads + \(c.numHiddenLayers) MLPs
            """
    }
}
