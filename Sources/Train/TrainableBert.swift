// A BERT classifier whose weights train: every parameter in one flat fp32 buffer (with its gradient and
// the Hugging Face name of each slice), and the training step — the forward pass with dropout and the
// backward pass with respect to every weight, driving the same blocks as Model/MaskGradients.swift (which
// differentiates with respect to the mask values, weights frozen).
//
//   x0  = Dropout(LayerNorm(word[ids] + position[0..<T] + token_type[tt]))
//   per layer:  qkv = x Wqkvᵀ + b;  ctx = softmax(QKᵀ/√d) V;  g = Dropout(ctx W_Oᵀ + b_O) + x;  a = LN1(g)
//               u = a W_iᵀ + b_i;  m = Dropout(gelu(u) W_2ᵀ + b_2);  h = m + a;  x = LN2(h)
//   pooled = tanh(x[CLS] W_pᵀ + b_p);  logits = Dropout(pooled) W_cᵀ + b_c;  loss = mean CE
//
// Dropout is BERT's hidden dropout (embeddings, attention output, MLP output, classifier input), inverted
// (kept values scaled by 1/(1−p)). Attention-probability dropout is not applied (documented in --help).
// The math lives in Model's blocks (Sources/Model/Blocks); this file owns the parameter layout and the driver.
import Checkpoint
import Foundation
import Kernels
import Model

/// Offsets of one Linear's weight [out, in] and bias [out] in the flat parameter buffer.
struct LinearSlot { let w: Int, b: Int, out: Int, inp: Int }
/// Offsets of a LayerNorm's weight (γ) and bias (β).
struct NormSlot { let g: Int, b: Int }
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

    /// Lays out the tensors (values uninitialised).
    init(layout c: BertConfig) {
        config = c
        let D = c.hiddenSize
        let I = c.intermediateSize
        var list: [(String, [Int], Int)] = []
        var offset = 0
        func add(_ name: String, _ shape: [Int]) -> Int {
            list.append((name, shape, offset))
            defer { offset += shape.reduce(1, *) }
            return offset
        }
        func linear(_ name: String, _ out: Int, _ inp: Int) -> LinearSlot {
            let w = add(name + ".weight", [out, inp])
            return LinearSlot(w: w, b: add(name + ".bias", [out]), out: out, inp: inp)
        }
        func norm(_ name: String) -> NormSlot {
            let g = add(name + ".weight", [D])
            return NormSlot(g: g, b: add(name + ".bias", [D]))
        }
        word = add("bert.embeddings.word_embeddings.weight", [c.vocabSize, D])
        position = add("bert.embeddings.position_embeddings.weight", [c.maxPositionEmbeddings, D])
        tokenType = add("bert.embeddings.token_type_embeddings.weight", [c.typeVocabSize, D])
        embeddingNorm = norm("bert.embeddings.LayerNorm")
        var layers: [LayerSlots] = []
        for l in 0..<c.numHiddenLayers {
            let p = "bert.encoder.layer.\(l)."
            // Query, key and value weights adjacent, then their biases: the fused [3D, D] Linear is one slice.
            let qw = add(p + "attention.self.query.weight", [D, D])
            _ = add(p + "attention.self.key.weight", [D, D])
            _ = add(p + "attention.self.value.weight", [D, D])
            let qb = add(p + "attention.self.query.bias", [D])
            _ = add(p + "attention.self.key.bias", [D])
            _ = add(p + "attention.self.value.bias", [D])
            layers.append(
                LayerSlots(
                    qkv: LinearSlot(w: qw, b: qb, out: 3 * D, inp: D),
                    attentionOutput: linear(p + "attention.output.dense", D, D),
                    attentionNorm: norm(p + "attention.output.LayerNorm"),
                    intermediate: linear(p + "intermediate.dense", I, D),
                    output: linear(p + "output.dense", D, I),
                    outputNorm: norm(p + "output.LayerNorm")))
        }
        self.layers = layers
        pooler = linear("bert.pooler.dense", D, D)
        classifier = linear("classifier", c.numLabels, D)
        tensors = list.map { (name: $0.0, shape: $0.1, offset: $0.2) }
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
    public var logits: [Float]  // [B, C]
}

extension TrainableBert {
    /// Cross-entropy of `labels` on `batch`, and its gradient with respect to every parameter added into
    /// `grads` (scaled by `gradientScale`, e.g. 1/accumulation). `dropout` 0 disables it. A driver over
    /// Model's blocks (embeddings, encoder layer, classifier head, loss), as `BertModel.maskGradients` is.
    public func trainingStep(
        _ batch: TokenBatch, labels: [Int], dropout: Float, rng: inout SplitMix64,
        gradientScale: Float = 1, pool: ThreadPool = .shared
    ) throws -> StepResult {
        try validate(batch, labels: labels)
        let B = batch.count
        let N = batch.tokenCount
        let D = config.hiddenSize
        let I = config.intermediateSize
        let C = config.numLabels
        let shape = BlockShape(
            offsets: batch.offsets, hidden: D, inner: I, heads: config.numAttentionHeads, headDim: config.headDim,
            eps: config.layerNormEps)
        arena.reset()
        let (layerParameters, head) = (
            layers.map(parameters),
            HeadParameters(pooler: packed(pooler), classifier: packed(classifier), transposed: true)
        )
        // Forward (dropout multipliers drawn in the order embeddings, each layer's attention and MLP, pooled).
        let e = arena.take(N * D)
        let eMean = arena.take(N)
        let eRstd = arena.take(N)
        let x = arena.take(N * D)
        embeddingSum(batch, tables(params), hidden: D, into: e, pool: pool)
        layerNormForward(
            e, x, rows: N, count: D, gamma: params + embeddingNorm.g, beta: params + embeddingNorm.b,
            eps: config.layerNormEps,
            mean: eMean, rstd: eRstd)
        let dropEmbeddings = dropoutMultipliers(N * D, p: dropout, rng: &rng, arena: arena)
        multiply(x, by: dropEmbeddings, count: N * D)
        let probCount = attentionProbOffsets(offsets: batch.offsets, heads: config.numAttentionHeads).last!
        let caches = layers.map { _ in
            LayerCache(
                arena: arena, tokens: N, hidden: D, inner: I, probCount: probCount, geluOutput: nil,
                dropAttention: dropoutMultipliers(N * D, p: dropout, rng: &rng, arena: arena),
                dropMLP: dropoutMultipliers(N * D, p: dropout, rng: &rng, arena: arena))
        }
        let xCLS = arena.take(B * D)
        for l in layers.indices {
            encoderLayerForward(
                x, layer: l, layerParameters[l], caches[l], shape: shape, masks: nil, compact: false, xCLS: xCLS,
                pool: pool)
        }
        let dropPooled = dropoutMultipliers(B * D, p: dropout, rng: &rng, arena: arena)
        let headCache = HeadCache(arena: arena, sequences: B, hidden: D)
        let logits = classifierHeadForward(
            x, offsets: batch.offsets, head, headCache, hidden: D, drop: dropPooled, pool: pool)
        let (loss, dlogits) = distributionLoss(
            logits: logits, targets: oneHot(labels, classes: C), classes: C, kl: false)

        // Backward: head, layers last to first, embeddings.
        let dpooled = arena.take(B * D)
        let dcls = arena.take(B * D)
        let dx = arena.take(N * D)
        classifierHeadBackward(
            dlogits.map { $0 * gradientScale }, head, headCache, hidden: D, drop: dropPooled,
            grads: (pooler: gradientSlot(pooler), classifier: gradientSlot(classifier)), dpooled: dpooled, dcls: dcls,
            pool: pool)
        scatterCLS(dcls, into: dx, offsets: batch.offsets, width: D, zeroOthers: true)
        let scratch = LayerBackwardScratch(arena: arena, tokens: N, hidden: D, inner: I)
        for l in layers.indices.reversed() {
            encoderLayerBackward(
                dx, layer: l, layerParameters[l], caches[l], shape: shape, masks: nil, compact: false, scratch: scratch,
                grads: gradients(layers[l]), dx: dx, pool: pool)
        }
        multiply(dx, by: dropEmbeddings, count: N * D)
        layerNormParameterGradients(
            dx, x: e, mean: eMean, rstd: eRstd, rows: N, count: D, dGamma: grads + embeddingNorm.g,
            dBeta: grads + embeddingNorm.b)
        layerNormBackward(
            dx, x: e, mean: eMean, rstd: eRstd, gamma: params + embeddingNorm.g, rows: N, count: D, dx: dx, pool: pool)
        embeddingSumBackward(dx, batch, hidden: D, gradients: tables(grads))
        return StepResult(loss: loss, logits: logits)
    }

    func validate(_ batch: TokenBatch, labels: [Int]) throws {
        let C = config.numLabels
        guard batch.count > 0, labels.count == batch.count, labels.allSatisfy({ (0..<C).contains($0) }) else {
            throw ModelError.badInput("a training batch needs one label in 0..<\(C) per sequence")
        }
        for s in 0..<batch.count where batch.length(s) > config.maxPositionEmbeddings || batch.length(s) < 1 {
            throw ModelError.badInput(
                "sequence of \(batch.length(s)) tokens; the model has \(config.maxPositionEmbeddings) positions")
        }
        for id in batch.inputIds where id < 0 || Int(id) >= config.vocabSize {
            throw ModelError.badInput("token id \(id) outside the vocabulary")
        }
        for t in batch.tokenTypeIds where t < 0 || Int(t) >= config.typeVocabSize {
            throw ModelError.badInput("token type \(t) outside the model's")
        }
    }

    // Views of the flat buffers as the blocks take them. Weights are packed afresh each step (they change).
    func packed(_ s: LinearSlot) -> PackedLinear {
        PackedLinear(weight: UnsafePointer(params + s.w), bias: UnsafePointer(params + s.b), n: s.out, k: s.inp)
    }
    func norm(_ s: NormSlot) -> LayerNormWeights {
        LayerNormWeights(
            gamma: Array(UnsafeBufferPointer(start: params + s.g, count: config.hiddenSize)),
            beta: Array(UnsafeBufferPointer(start: params + s.b, count: config.hiddenSize)))
    }
    func parameters(_ s: LayerSlots) -> LayerParameters {
        LayerParameters(
            qkv: packed(s.qkv), attentionOutput: packed(s.attentionOutput), intermediate: packed(s.intermediate),
            output: packed(s.output), attentionNorm: norm(s.attentionNorm), outputNorm: norm(s.outputNorm))
    }
    func gradientSlot(_ s: LinearSlot) -> LinearGradientSlot {
        LinearGradientSlot(weight: grads + s.w, bias: grads + s.b)
    }
    func gradients(_ s: LayerSlots) -> LayerGradients {
        LayerGradients(
            qkv: gradientSlot(s.qkv), attentionOutput: gradientSlot(s.attentionOutput),
            attentionNorm: NormGradientSlot(gamma: grads + s.attentionNorm.g, beta: grads + s.attentionNorm.b),
            intermediate: gradientSlot(s.intermediate), output: gradientSlot(s.output),
            outputNorm: NormGradientSlot(gamma: grads + s.outputNorm.g, beta: grads + s.outputNorm.b))
    }
    func tables(_ base: UnsafeMutablePointer<Float>) -> EmbeddingTables {
        EmbeddingTables(word: base + word, tokenType: base + tokenType, position: base + position)
    }
}
