// A BERT classifier whose weights train: every parameter in one flat fp32 buffer (with its gradient), laid out
// in the checkpoint's own order and names (Checkpoint/BertTensorNames.swift), and the training step — one
// forward of the composition (Model/BertPass.swift) in training mode, the cross-entropy, and its backward with
// respect to every weight.
//
// Dropout is BERT's, as transformers applies it in training: hidden dropout on the embeddings, the attention
// output, the MLP output and the classifier input, and dropout on the attention probabilities — inverted
// (kept values scaled by 1/(1−p)).
import Checkpoint
import Foundation
import Kernels
import Model

/// Offsets of one Linear's weight [out, in] and bias [out] in the flat parameter buffer.
struct LinearSlot {
    let w: Int, b: Int, out: Int, inp: Int
}

/// Offsets of a LayerNorm's weight (γ) and bias (β).
struct NormSlot {
    let g: Int, b: Int
}

struct LayerSlots {
    let qkv, attentionOutput: LinearSlot
    let attentionNorm: NormSlot
    let intermediate, output: LinearSlot
    let outputNorm: NormSlot
}

public final class TrainableBert: @unchecked Sendable {
    public let config: BertConfig
    /// Every tensor as the checkpoint names it, in file order, with its slice of `params`.
    public private(set) var tensors: [(name: String, shape: [Int], offset: Int)] = []
    public let parameterCount: Int
    /// All weights, flat fp32; `grads` has the same layout.
    public let params: UnsafeMutablePointer<Float>
    public let grads: UnsafeMutablePointer<Float>
    /// Buffers of the training step, kept between steps.
    let arena = ScratchArena()

    let word, position, tokenType: Int
    let embeddingNorm: NormSlot
    let layers: [LayerSlots]
    let pooler: LinearSlot
    let classifier: LinearSlot

    /// Parameters with Hugging Face's usual initialisation: N(0, 0.02) weights and embeddings (the padding
    /// row zero), zero biases, LayerNorm γ = 1, β = 0.
    public convenience init(config: BertConfig, seed: UInt64) {
        self.init(layout: config)
        var rng = SplitMix64(seed: seed)
        for t in tensors {
            let n = t.shape.reduce(1, *)
            let p = params + t.offset
            if t.name.hasSuffix("LayerNorm.weight") {
                for i in 0..<n { p[i] = 1 }
            } else if t.name.hasSuffix(".bias") {
                for i in 0..<n { p[i] = 0 }
            } else {
                for i in 0..<n { p[i] = Float(0.02 * rng.normal()) }
                if t.name.hasSuffix("word_embeddings.weight") {
                    for j in 0..<config.hiddenSize { p[config.padTokenId * config.hiddenSize + j] = 0 }
                }
            }
        }
    }

    /// Starts from a loaded model (a pretrained checkpoint to fine-tune). A model without a classifier
    /// gets a fresh N(0, 0.02) one for `config.numLabels` labels.
    public convenience init(model: BertModel, labels: [String]? = nil, seed: UInt64 = 42) throws {
        var c = model.config
        if let labels { c.labels = labels }
        self.init(config: c, seed: seed)
        func copy(_ values: [Float], to offset: Int) {
            values.withUnsafeBufferPointer { (params + offset).update(from: $0.baseAddress!, count: values.count) }
        }
        func copy(_ lin: PackedLinear, _ slot: LinearSlot) {
            copy(lin.unpacked(), to: slot.w)
            if let b = lin.biasArray { copy(b, to: slot.b) }
        }
        copy(model.wordEmbeddings, to: word)
        copy(model.positionEmbeddings, to: position)
        copy(model.tokenTypeEmbeddings, to: tokenType)
        copy(model.embeddingsLayerNorm.gamma, to: embeddingNorm.g)
        copy(model.embeddingsLayerNorm.beta, to: embeddingNorm.b)
        for (l, s) in layers.enumerated() {
            let m = model.layers[l]
            copy(m.qkv, s.qkv)
            copy(m.attentionOutput, s.attentionOutput)
            copy(m.intermediate, s.intermediate)
            copy(m.output, s.output)
            copy(m.attentionLayerNorm.gamma, to: s.attentionNorm.g)
            copy(m.attentionLayerNorm.beta, to: s.attentionNorm.b)
            copy(m.outputLayerNorm.gamma, to: s.outputNorm.g)
            copy(m.outputLayerNorm.beta, to: s.outputNorm.b)
        }
        if let p = model.pooler { copy(p, pooler) }
        if let cl = model.classifier, cl.n == c.numLabels { copy(cl, classifier) }
    }

    /// Lays out the tensors (values uninitialised) in the checkpoint's order.
    init(layout c: BertConfig) {
        config = c
        let names = BertTensorNames.self
        var list: [(name: String, shape: [Int], offset: Int)] = []
        var offset = 0
        for t in names.all(c) {
            list.append((name: t.name, shape: t.shape, offset: offset))
            offset += t.shape.reduce(1, *)
        }
        tensors = list
        let index = Dictionary(uniqueKeysWithValues: list.map { ($0.name, $0.offset) })
        func at(_ module: String, _ suffix: String, top: Bool = false) -> Int {
            index[(top ? "" : names.prefix) + module + suffix]!
        }
        func linear(_ m: String, _ out: Int, _ inp: Int, top: Bool = false) -> LinearSlot {
            LinearSlot(w: at(m, ".weight", top: top), b: at(m, ".bias", top: top), out: out, inp: inp)
        }
        func norm(_ m: String) -> NormSlot { NormSlot(g: at(m, ".weight"), b: at(m, ".bias")) }
        let (D, I) = (c.hiddenSize, c.intermediateSize)
        word = at(names.wordEmbeddings, ".weight")
        position = at(names.positionEmbeddings, ".weight")
        tokenType = at(names.tokenTypeEmbeddings, ".weight")
        embeddingNorm = norm(names.embeddingsLayerNorm)
        layers = (0..<c.numHiddenLayers).map { l in
            let n = names.layer(l)
            // Query, key and value weights are adjacent, then their biases: the fused [3D, D] Linear is one slice.
            return LayerSlots(
                qkv: LinearSlot(w: at(n.query, ".weight"), b: at(n.query, ".bias"), out: 3 * D, inp: D),
                attentionOutput: linear(n.attentionOutput, D, D), attentionNorm: norm(n.attentionLayerNorm),
                intermediate: linear(n.intermediate, I, D), output: linear(n.output, D, I),
                outputNorm: norm(n.outputLayerNorm))
        }
        pooler = linear(names.pooler, D, D)
        classifier = linear(names.classifier, c.numLabels, D, top: true)
        parameterCount = offset
        params = allocateFloats(offset)
        grads = allocateFloats(offset)
        zeroGradients()
    }

    deinit {
        params.deallocate()
        grads.deallocate()
    }

    public func zeroGradients() { grads.update(repeating: 0, count: parameterCount) }

    /// The tensor `name` as an array (tests, saving).
    public func values(_ name: String) -> [Float]? {
        guard let t = tensors.first(where: { $0.name == name }) else { return nil }
        return Array(UnsafeBufferPointer(start: params + t.offset, count: t.shape.reduce(1, *)))
    }

    /// The model as safetensors tensors under the Hugging Face names (BertForSequenceClassification).
    public func safetensors(metadata: [String: String] = ["format": "pt"]) -> SafetensorsWriter {
        var w = SafetensorsWriter()
        w.metadata = metadata
        for t in tensors {
            w.add(
                t.name, shape: t.shape,
                Array(UnsafeBufferPointer(start: params + t.offset, count: t.shape.reduce(1, *))))
        }
        return w
    }

    /// The current weights as an inference model (packed; for evaluation during training), read straight
    /// from the parameter buffer through `TrainingWeights` — the loader every checkpoint goes through.
    public func inferenceModel(folder: String = "<training>") throws -> BertModel {
        try BertModel(config: config, source: TrainingWeights(self, path: folder), folder: folder)
    }
}

/// A TrainableBert's parameter buffer seen as a checkpoint (Hugging Face names, F32), so that
/// `BertModel`'s one loader builds the inference model from it without writing or parsing bytes.
final class TrainingWeights: TensorSource {
    let model: TrainableBert
    let path: String
    init(_ model: TrainableBert, path: String) {
        self.model = model
        self.path = path
    }

    var names: [String] { model.tensors.map(\.name) }

    func info(_ name: String) -> TensorInfo? {
        guard let t = model.tensors.first(where: { $0.name == name }) else { return nil }
        let n = t.shape.reduce(1, *)
        return TensorInfo(name: name, dtype: .f32, shape: t.shape, byteRange: (t.offset * 4)..<((t.offset + n) * 4))
    }

    func floats(_ name: String) throws -> [Float] {
        guard let v = model.values(name) else { throw CheckpointError.missingTensor(path: path, name: name) }
        return v
    }

    func ints(_ name: String) throws -> [Int] {
        throw CheckpointError.unsupported(path: path, reason: "'\(name)' is a float parameter")
    }

    func release(_ name: String) {}
}

// MARK: - training step

public struct StepResult: Sendable {
    public var loss: Double
    /// [B, C]
    public var logits: [Float]
}

/// Dropout of one training step: hidden (embeddings, attention output, MLP output, pooled) and on the attention
/// probabilities; the multipliers come from SplitMix64(seed) in the composition's order.
public struct StepDropout: Sendable {
    public var hidden: Float
    public var attention: Float
    public var seed: UInt64
    public init(hidden: Float, attention: Float, seed: UInt64) {
        (self.hidden, self.attention, self.seed) = (hidden, attention, seed)
    }
    public static let off = StepDropout(hidden: 0, attention: 0, seed: 0)
}

extension TrainableBert {
    /// Cross-entropy of `labels` on `batch`, and its gradient with respect to every parameter added into
    /// `grads` (scaled by `gradientScale`, e.g. 1/accumulation).
    public func trainingStep(
        _ batch: TokenBatch, labels: [Int], dropout: StepDropout, gradientScale: Float = 1, pool: ThreadPool = .shared
    ) throws -> StepResult {
        try config.validate(batch)
        let C = config.numLabels
        guard labels.count == batch.count, labels.allSatisfy({ (0..<C).contains($0) }) else {
            throw ModelError.badInput("a training batch needs one label in 0..<\(C) per sequence")
        }
        arena.reset()
        let weights = parameters()
        let mode = TrainingMode(
            dropout: dropout.hidden, attentionDropout: dropout.attention, seed: dropout.seed, weightGradients: true)
        let table = ActivationTable(
            arena: arena, batch: batch, shape: weights.shape, layers: config.numHiddenLayers, training: mode)
        let request = PassRequest(plan: weights.fullPlan, lastLayer: .all)
        let logits = weights.forward(batch, request, table, arena: arena, pool: pool)
        let (loss, dlogits) = distributionLoss(
            logits: logits, targets: oneHot(labels, classes: C), classes: C, kl: false)
        _ = weights.backward(
            dlogits.map { $0 * gradientScale }, batch, request, table, BertBackwardWeights(weights),
            grads: gradients(), arena: arena, pool: pool)
        return StepResult(loss: loss, logits: logits)
    }

    /// The weights as the composition reads them, packed afresh (they change every step).
    package func parameters() -> BertParameters {
        let D = config.hiddenSize
        func packed(_ s: LinearSlot) -> PackedLinear {
            PackedLinear(weight: UnsafePointer(params + s.w), bias: UnsafePointer(params + s.b), n: s.out, k: s.inp)
        }
        func norm(_ s: NormSlot) -> LayerNormWeights {
            LayerNormWeights(
                gamma: Array(UnsafeBufferPointer(start: params + s.g, count: D)),
                beta: Array(UnsafeBufferPointer(start: params + s.b, count: D)))
        }
        let layers = self.layers.map { s in
            BertLayer(
                qkv: packed(s.qkv), attentionOutput: packed(s.attentionOutput),
                attentionLayerNorm: norm(s.attentionNorm),
                intermediate: packed(s.intermediate), output: packed(s.output), outputLayerNorm: norm(s.outputNorm))
        }
        return BertParameters(
            config: config, embeddings: tables(params), embeddingsLayerNorm: norm(embeddingNorm), layers: layers,
            head: HeadParameters(pooler: packed(pooler), classifier: packed(classifier)))
    }

    /// Where each weight's gradient accumulates: `grads`, in the same layout.
    func gradients() -> BertGradients {
        func slot(_ s: LinearSlot) -> LinearGradientSlot { LinearGradientSlot(weight: grads + s.w, bias: grads + s.b) }
        func norm(_ s: NormSlot) -> NormGradientSlot { NormGradientSlot(gamma: grads + s.g, beta: grads + s.b) }
        return BertGradients(
            embeddings: tables(grads), embeddingsNorm: norm(embeddingNorm),
            layers: layers.map {
                LayerGradients(
                    qkv: slot($0.qkv), attentionOutput: slot($0.attentionOutput), attentionNorm: norm($0.attentionNorm),
                    intermediate: slot($0.intermediate), output: slot($0.output), outputNorm: norm($0.outputNorm))
            }, pooler: slot(pooler), classifier: slot(classifier))
    }

    func tables(_ base: UnsafeMutablePointer<Float>) -> EmbeddingTables {
        EmbeddingTables(word: base + word, tokenType: base + tokenType, position: base + position)
    }
}
