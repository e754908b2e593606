// BERT's weights, named as in the Hugging Face checkpoint, packed once for the GEMM at load time.
//
//   bert.embeddings.{word,position,token_type}_embeddings.weight, bert.embeddings.LayerNorm
//   bert.encoder.layer.N.attention.self.{query,key,value}   → fused into one [3D, D] `qkv` Linear
//   bert.encoder.layer.N.attention.output.{dense,LayerNorm}
//   bert.encoder.layer.N.intermediate.dense, bert.encoder.layer.N.output.{dense,LayerNorm}
//   bert.pooler.dense, classifier
// Accepted variants: no `bert.` prefix (a bare BertModel), LayerNorm `gamma`/`beta` (old TF ports).
import Checkpoint
import Failures
import Foundation
import Kernels

public enum ModelError: ClassifiedError {
    case notAModelFolder(path: String, reason: String)
    case noClassifier(path: String)
    case badInput(String)
    /// Masks, activations or a plan made for another model (or of the wrong shape).
    case mismatch(String)

    public var kind: FailureKind {
        if case .mismatch = self { return .mismatch }
        return .badInput
    }

    public var description: String {
        switch self {
        case .notAModelFolder(let path, let reason): return "\(path): \(reason)"
        case .noClassifier(let path):
            return
                "\(path): the checkpoint has no classifier (classifier.weight/bias); it is a bare BertModel — use a BertForSequenceClassification checkpoint for predict/eval"
        case .badInput(let s), .mismatch(let s): return s
        }
    }
}

public struct LayerNormWeights: Sendable {
    public let gamma: [Float]
    public let beta: [Float]
    public init(gamma: [Float], beta: [Float]) {
        self.gamma = gamma
        self.beta = beta
    }
}

public final class BertLayer: @unchecked Sendable {
    /// attention.self.{query,key,value} fused: rows 0..<D query, D..<2D key, 2D..<3D value.
    public let qkv: PackedLinear
    /// attention.output.dense [D, D]
    public let attentionOutput: PackedLinear
    /// attention.output.LayerNorm
    public let attentionLayerNorm: LayerNormWeights
    /// intermediate.dense [I, D]
    public let intermediate: PackedLinear
    /// output.dense [D, I]
    public let output: PackedLinear
    /// output.LayerNorm
    public let outputLayerNorm: LayerNormWeights

    public init(
        qkv: PackedLinear, attentionOutput: PackedLinear, attentionLayerNorm: LayerNormWeights,
        intermediate: PackedLinear, output: PackedLinear, outputLayerNorm: LayerNormWeights
    ) {
        self.qkv = qkv
        self.attentionOutput = attentionOutput
        self.attentionLayerNorm = attentionLayerNorm
        self.intermediate = intermediate
        self.output = output
        self.outputLayerNorm = outputLayerNorm
    }
}

/// Finds tensors under the name variants real checkpoints use.
struct TensorNamer {
    let source: TensorSource
    let prefix: String  // "bert." or ""

    init(source: TensorSource) {
        self.source = source
        prefix = source.info("bert.embeddings.word_embeddings.weight") != nil ? "bert." : ""
    }

    /// The checkpoint's own name for a canonical (prefix-free) name, or nil.
    func resolve(_ canonical: String, top: Bool = false) -> String? {
        var candidates = top ? [canonical] : [prefix + canonical]
        if canonical.hasSuffix("LayerNorm.weight") { candidates.append(prefix + canonical.dropLast(6) + "gamma") }
        if canonical.hasSuffix("LayerNorm.bias") { candidates.append(prefix + canonical.dropLast(4) + "beta") }
        return candidates.first { source.info($0) != nil }
    }

    func floats(_ canonical: String, shape: [Int], top: Bool = false) throws -> [Float] {
        guard let name = resolve(canonical, top: top), let info = source.info(name) else {
            throw CheckpointError.missingTensor(path: source.path, name: (top ? "" : prefix) + canonical)
        }
        guard info.shape == shape else {
            throw CheckpointError.shapeMismatch(path: source.path, name: name, expected: shape, found: info.shape)
        }
        return try source.floats(name)
    }
}

public final class BertModel: @unchecked Sendable {
    public let config: BertConfig
    public let folder: String
    public let weightsPath: String
    /// [V, D], [P, D], [T, D]
    public let wordEmbeddings: [Float]
    public let positionEmbeddings: [Float]
    public let tokenTypeEmbeddings: [Float]
    public let embeddingsLayerNorm: LayerNormWeights
    public let layers: [BertLayer]
    /// pooler.dense [D, D]; nil for checkpoints without a pooler.
    public let pooler: PackedLinear?
    /// classifier [C, D]; nil for a bare BertModel.
    public let classifier: PackedLinear?
    /// Content hash of every weight (names, shapes, values), "hc1-…"; see Checkpoint/Fingerprint.swift.
    public let fingerprint: String
    public let parameterCount: Int
    /// Built on first use: the transposed weights of the backward pass.
    let lazyLock = NSLock()
    var lazyBackward: AnyObject?
    var lazyFullPlan: ExecutionPlan?
    /// Scratch buffers of the forward and mask-gradient passes, reused between calls (Scratch.swift).
    var arenaPool: [ScratchArena] = []

    public var hidden: Int { config.hiddenSize }
    public var headCount: Int { config.numAttentionHeads }
    public var headDim: Int { config.headDim }
    public var layerCount: Int { config.numHiddenLayers }

    /// Loads a Hugging Face folder: config.json plus model.safetensors (preferred) or pytorch_model.bin.
    public static func load(folder: String) throws -> BertModel {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder, isDirectory: &isDir), isDir.boolValue else {
            throw ModelError.notAModelFolder(
                path: folder,
                reason:
                    "not a folder; pass a Hugging Face model folder (config.json + model.safetensors or pytorch_model.bin)"
            )
        }
        let config = try BertConfig.load(path: folder + "/config.json")
        let st = folder + "/model.safetensors"
        let bin = folder + "/pytorch_model.bin"
        let source: TensorSource
        if FileManager.default.fileExists(atPath: st) {
            source = try SafetensorsFile(path: st)
        } else if FileManager.default.fileExists(atPath: bin) {
            source = try TorchCheckpoint(path: bin)
        } else {
            throw ModelError.notAModelFolder(
                path: folder,
                reason: "no model.safetensors or pytorch_model.bin (sharded checkpoints: merge them first)")
        }
        return try BertModel(config: config, source: source, folder: folder)
    }

    public init(config c: BertConfig, source: TensorSource, folder: String) throws {
        self.config = c
        self.folder = folder
        self.weightsPath = source.path
        let t = TensorNamer(source: source)
        let D = c.hiddenSize
        let I = c.intermediateSize
        var fp = Fingerprinter()
        var params = 0
        func load(_ name: String, _ shape: [Int], top: Bool = false) throws -> [Float] {
            let v = try t.floats(name, shape: shape, top: top)
            // A NaN or infinity in any weight makes every logit NaN, which would be scored as label 0.
            if let bad = v.firstIndex(where: { !$0.isFinite }) {
                throw ModelError.badInput(
                    "\(source.path): tensor '\(t.resolve(name, top: top) ?? name)' holds \(v[bad]) at index \(bad); non-finite weights make every prediction NaN — re-export the checkpoint"
                )
            }
            v.withUnsafeBufferPointer { fp.add(name: name, shape: shape, values: $0) }
            params += v.count
            if let n = t.resolve(name, top: top) { source.release(n) }
            return v
        }
        func linear(_ name: String, out: Int, inp: Int, top: Bool = false) throws -> PackedLinear {
            let w = try load(name + ".weight", [out, inp], top: top)
            let b = try load(name + ".bias", [out], top: top)
            return PackedLinear(weight: w, bias: b, n: out, k: inp)
        }
        func layerNorm(_ name: String) throws -> LayerNormWeights {
            LayerNormWeights(gamma: try load(name + ".weight", [D]), beta: try load(name + ".bias", [D]))
        }
        wordEmbeddings = try load("embeddings.word_embeddings.weight", [c.vocabSize, D])
        positionEmbeddings = try load("embeddings.position_embeddings.weight", [c.maxPositionEmbeddings, D])
        tokenTypeEmbeddings = try load("embeddings.token_type_embeddings.weight", [c.typeVocabSize, D])
        embeddingsLayerNorm = try layerNorm("embeddings.LayerNorm")
        var layers: [BertLayer] = []
        for l in 0..<c.numHiddenLayers {
            let p = "encoder.layer.\(l)."
            // Physically pruned heads (config pruned_heads) are absent from the checkpoint; they come back as zero
            // rows of Q/K/V and zero columns of W_O, so their context is 0 and adds nothing — as in transformers.
            let present = (0..<c.numAttentionHeads).filter { !(c.prunedHeads[l] ?? []).contains($0) }
            let d = c.headDim
            let P = present.count * d
            var w: [Float] = []
            var b: [Float] = []
            for part in ["query", "key", "value"] {
                let rows = try load(p + "attention.self.\(part).weight", [P, D])
                let bias = try load(p + "attention.self.\(part).bias", [P])
                var fullW = [Float](repeating: 0, count: D * D)
                var fullB = [Float](repeating: 0, count: D)
                for (i, h) in present.enumerated() {
                    fullW.replaceSubrange((h * d * D)..<((h + 1) * d * D), with: rows[(i * d * D)..<((i + 1) * d * D)])
                    fullB.replaceSubrange((h * d)..<((h + 1) * d), with: bias[(i * d)..<((i + 1) * d)])
                }
                w += fullW
                b += fullB
            }
            let wo = try load(p + "attention.output.dense.weight", [D, P])
            var fullWO = [Float](repeating: 0, count: D * D)
            for r in 0..<D {
                for (i, h) in present.enumerated() {
                    for e in 0..<d { fullWO[r * D + h * d + e] = wo[r * P + i * d + e] }
                }
            }
            layers.append(
                BertLayer(
                    qkv: PackedLinear(weight: w, bias: b, n: 3 * D, k: D),
                    attentionOutput: PackedLinear(
                        weight: fullWO, bias: try load(p + "attention.output.dense.bias", [D]), n: D, k: D),
                    attentionLayerNorm: try layerNorm(p + "attention.output.LayerNorm"),
                    intermediate: try linear(p + "intermediate.dense", out: I, inp: D),
                    output: try linear(p + "output.dense", out: D, inp: I),
                    outputLayerNorm: try layerNorm(p + "output.LayerNorm")))
        }
        self.layers = layers
        pooler = t.resolve("pooler.dense.weight") != nil ? try linear("pooler.dense", out: D, inp: D) : nil
        if source.info("classifier.weight") != nil {
            // The classifier reads the pooled [CLS]: without the pooler the logits would be silently wrong.
            guard pooler != nil else {
                let unknown = source.names.filter { $0.contains("pool") }
                throw CheckpointError.missingTensor(
                    path: source.path,
                    name: t.prefix + "pooler.dense.weight"
                        + (unknown.isEmpty
                            ? "" : " (the checkpoint has \(unknown.joined(separator: ", ")) instead: misspelt?)"))
            }
            guard let shape = source.info("classifier.weight")?.shape, shape.count == 2, shape[1] == D else {
                throw CheckpointError.shapeMismatch(
                    path: source.path, name: "classifier.weight", expected: [c.numLabels, D],
                    found: source.info("classifier.weight")?.shape ?? [])
            }
            guard shape[0] == c.numLabels else {
                throw CheckpointError.shapeMismatch(
                    path: source.path, name: "classifier.weight (config.json id2label has \(c.numLabels) labels)",
                    expected: [c.numLabels, D], found: shape)
            }
            classifier = try linear("classifier", out: c.numLabels, inp: D, top: true)
        } else {
            classifier = nil
        }
        fingerprint = fp.string
        parameterCount = params
    }
}
