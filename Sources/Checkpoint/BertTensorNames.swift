// The tensor names of a Hugging Face BertForSequenceClassification checkpoint, spelled once. Loading, training,
// export, the store's import of the reference's pruned runs and its pickled activations all name tensors
// through these.
//
//   bert.embeddings.{word,position,token_type}_embeddings.weight, bert.embeddings.LayerNorm.{weight,bias}
//   bert.encoder.layer.N.attention.self.{query,key,value}.{weight,bias}
//   bert.encoder.layer.N.attention.output.{dense,LayerNorm}.{weight,bias}
//   bert.encoder.layer.N.intermediate.dense.{weight,bias}, bert.encoder.layer.N.output.{dense,LayerNorm}.{weight,bias}
//   bert.pooler.dense.{weight,bias}, classifier.{weight,bias}
// and the reference's pruning gates: bert.encoder.layer.N.attention.self.log_alpha_heads [H],
// bert.encoder.layer.N.output.log_alpha_mlp [1].

/// Module paths inside `bert.` (append `.weight` / `.bias`), and the top-level classifier.
public enum BertTensorNames {
    /// The prefix of every module of the encoder in a BertForSequenceClassification (a bare BertModel has none).
    public static let prefix = "bert."
    public static let wordEmbeddings = "embeddings.word_embeddings"
    public static let positionEmbeddings = "embeddings.position_embeddings"
    public static let tokenTypeEmbeddings = "embeddings.token_type_embeddings"
    public static let embeddingsLayerNorm = "embeddings.LayerNorm"
    public static let pooler = "pooler.dense"
    /// Top level: not under `bert.`.
    public static let classifier = "classifier"

    /// The modules of encoder layer `l`.
    public struct Layer: Sendable {
        public let index: Int
        var base: String { "encoder.layer.\(index)." }
        /// `attention.self`: the module whose per-head outputs (contexts) the reference averages.
        public var attentionSelf: String { base + "attention.self" }
        public var query: String { attentionSelf + ".query" }
        public var key: String { attentionSelf + ".key" }
        public var value: String { attentionSelf + ".value" }
        public var attentionOutput: String { base + "attention.output.dense" }
        public var attentionLayerNorm: String { base + "attention.output.LayerNorm" }
        public var intermediate: String { base + "intermediate.dense" }
        /// `output`: the module whose output (the MLP's, before the residual) the reference averages.
        public var outputModule: String { base + "output" }
        public var output: String { outputModule + ".dense" }
        public var outputLayerNorm: String { outputModule + ".LayerNorm" }
        /// The reference's pruning gates (its modeling code adds them to a pruned checkpoint).
        public var logAlphaHeads: String { attentionSelf + ".log_alpha_heads" }
        public var logAlphaMLP: String { outputModule + ".log_alpha_mlp" }
    }

    public static func layer(_ l: Int) -> Layer { Layer(index: l) }

    public static func weight(_ module: String) -> String { module + ".weight" }
    public static func bias(_ module: String) -> String { module + ".bias" }

    /// Every tensor of a BertForSequenceClassification for `config`, as transformers names and shapes them, in the
    /// order it saves them; query, key and value weights next to each other, then their biases, so that the
    /// fused [3D, D] projection is one slice of a flat buffer laid out in this order.
    public static func all(_ c: BertConfig) -> [(name: String, shape: [Int])] {
        let (D, I) = (c.hiddenSize, c.intermediateSize)
        func linear(_ m: String, _ out: Int, _ inp: Int, prefix: String = prefix) -> [(String, [Int])] {
            [(prefix + weight(m), [out, inp]), (prefix + bias(m), [out])]
        }
        func norm(_ m: String) -> [(String, [Int])] { [(prefix + weight(m), [D]), (prefix + bias(m), [D])] }
        var list: [(String, [Int])] = [
            (prefix + weight(wordEmbeddings), [c.vocabSize, D]),
            (prefix + weight(positionEmbeddings), [c.maxPositionEmbeddings, D]),
            (prefix + weight(tokenTypeEmbeddings), [c.typeVocabSize, D]),
        ]
        list += norm(embeddingsLayerNorm)
        for l in 0..<c.numHiddenLayers {
            let n = layer(l)
            list += [n.query, n.key, n.value].map { (prefix + weight($0), [D, D]) }
            list += [n.query, n.key, n.value].map { (prefix + bias($0), [D]) }
            list += linear(n.attentionOutput, D, D) + norm(n.attentionLayerNorm)
            list += linear(n.intermediate, I, D) + linear(n.output, D, I) + norm(n.outputLayerNorm)
        }
        list += linear(pooler, D, D) + linear(classifier, c.numLabels, D, prefix: "")
        return list.map { (name: $0.0, shape: $0.1) }
    }
}
