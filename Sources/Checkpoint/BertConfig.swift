// config.json of a Hugging Face BERT (BertConfig). Only what the forward pass depends on is required;
// settings hcore cannot honour are refused with a message instead of silently giving other numbers.
import Failures
import Foundation

public struct BertConfig: Sendable, Equatable, Codable {
    public var vocabSize: Int
    public var hiddenSize: Int
    public var numHiddenLayers: Int
    public var numAttentionHeads: Int
    public var intermediateSize: Int
    public var maxPositionEmbeddings: Int
    public var typeVocabSize: Int
    public var layerNormEps: Float
    public var hiddenAct: String
    public var hiddenDropoutProb: Float
    public var attentionProbsDropoutProb: Float
    public var padTokenId: Int
    /// Labels in class-index order ("LABEL_0"… when config.json has none).
    public var labels: [String]
    public var architectures: [String]

    /// Heads removed physically (transformers' `prune_heads`, config `pruned_heads`): layer → head indices.
    /// Their rows of Q/K/V and columns of W_O are absent from the checkpoint.
    public var prunedHeads: [Int: [Int]] = [:]
    public var headDim: Int { hiddenSize / numAttentionHeads }
    public var numLabels: Int { labels.count }

    public init(
        vocabSize: Int = 30522, hiddenSize: Int, numHiddenLayers: Int, numAttentionHeads: Int,
        intermediateSize: Int, maxPositionEmbeddings: Int = 512, typeVocabSize: Int = 2,
        layerNormEps: Float = 1e-12, hiddenDropoutProb: Float = 0.1, attentionProbsDropoutProb: Float = 0.1,
        labels: [String] = ["LABEL_0", "LABEL_1"]
    ) {
        self.vocabSize = vocabSize
        self.hiddenSize = hiddenSize
        self.numHiddenLayers = numHiddenLayers
        self.numAttentionHeads = numAttentionHeads
        self.intermediateSize = intermediateSize
        self.maxPositionEmbeddings = maxPositionEmbeddings
        self.typeVocabSize = typeVocabSize
        self.layerNormEps = layerNormEps
        self.hiddenAct = "gelu"
        self.hiddenDropoutProb = hiddenDropoutProb
        self.attentionProbsDropoutProb = attentionProbsDropoutProb
        self.padTokenId = 0
        self.labels = labels
        self.architectures = ["BertForSequenceClassification"]
    }

    public static func load(path: String) throws -> BertConfig {
        guard let bytes = try InputFiles.readIfPresent(path) else {
            throw CheckpointError.cannotOpen(path: path, reason: "no such file (a model folder needs config.json)")
        }
        let data = Data(bytes)
        let any: Any
        do { any = try JSONSerialization.jsonObject(with: data) } catch {
            throw CheckpointError.malformed(
                path: path, offset: nil, reason: "not valid JSON: \(error.localizedDescription)")
        }
        guard let j = any as? [String: Any] else {
            throw CheckpointError.malformed(path: path, offset: nil, reason: "config.json is not a JSON object")
        }
        return try BertConfig(json: j, path: path)
    }

    public init(json j: [String: Any], path: String) throws {
        // Every size is bounded before anything is allocated from it (a hostile config.json must not ask for
        // terabytes); the bounds are far above any BERT's.
        func int(_ key: String, default d: Int? = nil, max limit: Int = 1 << 20) throws -> Int {
            if let n = j[key] as? NSNumber, n.doubleValue.isFinite, n.doubleValue == n.doubleValue.rounded(),
                n.doubleValue > 0, n.doubleValue <= Double(limit)
            {
                return n.intValue
            }
            if j[key] == nil || j[key] is NSNull, let d { return d }
            throw CheckpointError.malformed(
                path: path, offset: nil, reason: "'\(key)' must be an integer from 1 to \(limit)")
        }
        func float(_ key: String, default d: Float, in range: ClosedRange<Float>) throws -> Float {
            if let n = j[key] as? NSNumber, range.contains(n.floatValue) { return n.floatValue }
            if j[key] == nil || j[key] is NSNull { return d }
            throw CheckpointError.malformed(
                path: path, offset: nil,
                reason: "'\(key)' must be a number in [\(range.lowerBound), \(range.upperBound)]")
        }
        if let t = j["model_type"] as? String, t != "bert" {
            throw CheckpointError.unsupported(
                path: path, reason: "model_type '\(t)'; hcore runs BERT (model_type \"bert\")")
        }
        vocabSize = try int("vocab_size", max: 1 << 24)
        hiddenSize = try int("hidden_size", max: 1 << 16)
        numHiddenLayers = try int("num_hidden_layers", max: 1 << 10)
        numAttentionHeads = try int("num_attention_heads", max: 1 << 10)
        intermediateSize = try int("intermediate_size", max: 1 << 18)
        maxPositionEmbeddings = try int("max_position_embeddings", default: 512, max: 1 << 16)
        typeVocabSize = try int("type_vocab_size", default: 2, max: 1 << 10)
        layerNormEps = try float("layer_norm_eps", default: 1e-12, in: Float.leastNonzeroMagnitude...1)
        hiddenDropoutProb = try float("hidden_dropout_prob", default: 0.1, in: 0...0.999)
        attentionProbsDropoutProb = try float("attention_probs_dropout_prob", default: 0.1, in: 0...0.999)
        let pad = (j["pad_token_id"] as? NSNumber)?.doubleValue ?? 0
        guard pad.isFinite, pad >= 0, pad < Double(vocabSize), pad == pad.rounded() else {
            throw CheckpointError.malformed(
                path: path, offset: nil, reason: "'pad_token_id' must be a token id below vocab_size \(vocabSize)")
        }
        padTokenId = Int(pad)
        hiddenAct = (j["hidden_act"] as? String) ?? "gelu"
        guard hiddenAct == "gelu" else {
            throw CheckpointError.unsupported(
                path: path, reason: "hidden_act '\(hiddenAct)'; hcore implements BERT's exact erf GELU (\"gelu\") only")
        }
        if let p = j["position_embedding_type"] as? String, p != "absolute" {
            throw CheckpointError.unsupported(
                path: path, reason: "position_embedding_type '\(p)'; hcore implements \"absolute\" only")
        }
        if let dec = j["is_decoder"] as? Bool, dec {
            throw CheckpointError.unsupported(path: path, reason: "is_decoder: true; hcore runs bidirectional encoders")
        }
        guard hiddenSize % numAttentionHeads == 0 else {
            throw CheckpointError.malformed(
                path: path, offset: nil,
                reason: "hidden_size \(hiddenSize) is not a multiple of num_attention_heads \(numAttentionHeads)")
        }
        architectures = (j["architectures"] as? [String]) ?? []
        prunedHeads = try BertConfig.prunedHeads(
            j["pruned_heads"], path: path, layers: numHiddenLayers, heads: numAttentionHeads)
        labels = try BertConfig.labels(j, path: path, count: { try int("num_labels", max: 1 << 16) })
    }

    /// `pruned_heads`: layer number (a string) → distinct heads of that layer.
    static func prunedHeads(_ value: Any?, path: String, layers: Int, heads H: Int) throws -> [Int: [Int]] {
        guard let value, !(value is NSNull) else { return [:] }
        func bad(_ reason: String) -> CheckpointError { .malformed(path: path, offset: nil, reason: reason) }
        guard let dict = value as? [String: Any] else {
            throw bad("'pruned_heads' must map layer numbers to lists of heads")
        }
        var out: [Int: [Int]] = [:]
        for (k, v) in dict {
            guard let l = Int(k), l >= 0, l < layers, let list = v as? [NSNumber], list.count <= H else {
                throw bad("'pruned_heads' key '\(k)' must be a layer below \(layers) with a list of at most \(H) heads")
            }
            let heads = list.map(\.intValue)
            guard heads.allSatisfy({ (0..<H).contains($0) }), Set(heads).count == heads.count else {
                throw bad("'pruned_heads' of layer \(l) must list distinct heads below \(H), not \(heads)")
            }
            if !heads.isEmpty { out[l] = heads.sorted() }
        }
        return out
    }

    /// Labels: id2label (its keys "0"…"n−1", each once), else num_labels (`count`), else 2.
    static func labels(_ j: [String: Any], path: String, count: () throws -> Int) throws -> [String] {
        guard let id2label = j["id2label"] as? [String: Any], !id2label.isEmpty else {
            let n = j["num_labels"] == nil ? 2 : try count()
            return (0..<n).map { "LABEL_\($0)" }
        }
        let n = id2label.count
        guard n <= 1 << 16 else {
            throw CheckpointError.malformed(path: path, offset: nil, reason: "id2label has \(n) labels (at most 65536)")
        }
        var labels = [String?](repeating: nil, count: n)
        for (k, v) in id2label {
            // "00" and "0" would both be label 0, leaving another label without a name.
            guard let i = Int(k), String(i) == k, i >= 0, i < n, labels[i] == nil, let name = v as? String,
                !name.isEmpty
            else {
                throw CheckpointError.malformed(
                    path: path, offset: nil,
                    reason: "id2label must map \"0\"…\"\(n - 1)\" (each once) to non-empty names; it has '\(k)'")
            }
            labels[i] = name
        }
        return labels.map { $0! }
    }

    /// A config.json that transformers loads as BertForSequenceClassification.
    public func jsonObject() -> [String: Any] {
        var id2label: [String: String] = [:]
        var label2id: [String: Int] = [:]
        for (i, l) in labels.enumerated() {
            id2label[String(i)] = l
            label2id[l] = i
        }
        return [
            "architectures": architectures.isEmpty ? ["BertForSequenceClassification"] : architectures,
            "model_type": "bert", "vocab_size": vocabSize, "hidden_size": hiddenSize,
            "num_hidden_layers": numHiddenLayers, "num_attention_heads": numAttentionHeads,
            "intermediate_size": intermediateSize, "max_position_embeddings": maxPositionEmbeddings,
            "type_vocab_size": typeVocabSize, "layer_norm_eps": Double(layerNormEps), "hidden_act": hiddenAct,
            "hidden_dropout_prob": Double(hiddenDropoutProb),
            "attention_probs_dropout_prob": Double(attentionProbsDropoutProb),
            "pad_token_id": padTokenId, "position_embedding_type": "absolute", "id2label": id2label,
            "label2id": label2id,
            "initializer_range": 0.02, "classifier_dropout": NSNull(),
        ]
    }
}
