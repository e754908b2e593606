// BERT as the checkpoint names it (Checkpoint/BertTensorNames.swift): embeddings, encoder layers, pooler and
// classifier, packed once for the GEMM at load time. Query, key and value are fused into one [3D, D] Linear.
// Accepted variants: no `bert.` prefix (a bare BertModel), LayerNorm `gamma`/`beta` (old TF ports), heads absent
// from a physically pruned checkpoint (config `pruned_heads`; they come back as zero rows and columns).
import Checkpoint
import Failures
import Foundation
import Kernels

public struct LayerNormWeights: Sendable {
    public let gamma: [Float]
    public let beta: [Float]
    /// γ and β at addresses that live as long as these weights (for LayerNorm chains).
    public let pinnedGamma, pinnedBeta: PinnedRow
    public init(gamma: [Float], beta: [Float]) {
        self.gamma = gamma
        self.beta = beta
        (pinnedGamma, pinnedBeta) = (PinnedRow(gamma), PinnedRow(beta))
    }

    /// This LayerNorm as a chain's step, after adding `adding` [D] to the row.
    public func step(adding: PinnedRow?, eps: Float) -> LayerNormStep {
        LayerNormStep(adding: adding?.pointer, gamma: pinnedGamma.pointer, beta: pinnedBeta.pointer, eps: eps)
    }
}

/// One encoder layer's weights, named after its modules.
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
        (self.qkv, self.attentionOutput, self.attentionLayerNorm) = (qkv, attentionOutput, attentionLayerNorm)
        (self.intermediate, self.output, self.outputLayerNorm) = (intermediate, output, outputLayerNorm)
    }
}

public final class BertModel: @unchecked Sendable {
    public let config: BertConfig
    public let folder: String
    public let weightsPath: String
    public let embeddingsLayerNorm: LayerNormWeights
    public let layers: [BertLayer]
    /// pooler.dense [D, D]; nil for checkpoints without a pooler.
    public let pooler: PackedLinear?
    /// classifier [C, D]; nil for a bare BertModel.
    public let classifier: PackedLinear?
    /// Content hash of every weight (names, shapes, values), "hc1-…"; see Checkpoint/Fingerprint.swift.
    public let fingerprint: String
    public let parameterCount: Int
    /// The three embedding tables, word [V, D], position [P, D], token type [T, D], one after the other.
    let embeddingStorage: UnsafeMutablePointer<Float>
    /// The weights as the one composition reads them (BertPass.swift).
    package let parameters: BertParameters
    /// Built on first use: the transposed weights of the backward pass, the full model's plan.
    let lazyLock = NSLock()
    var lazyBackward: BertBackwardWeights?
    var lazyFullPlan: ExecutionPlan?
    /// Scratch buffers of the passes, reused between calls (Scratch.swift).
    var arenaPool: [ScratchArena] = []

    public var hidden: Int { config.hiddenSize }
    public var headCount: Int { config.numAttentionHeads }
    public var headDim: Int { config.headDim }
    public var layerCount: Int { config.numHiddenLayers }
    public var wordEmbeddings: [Float] { table(0, config.vocabSize) }
    public var positionEmbeddings: [Float] { table(config.vocabSize, config.maxPositionEmbeddings) }
    public var tokenTypeEmbeddings: [Float] {
        table(config.vocabSize + config.maxPositionEmbeddings, config.typeVocabSize)
    }

    func table(_ firstRow: Int, _ rows: Int) -> [Float] {
        Array(UnsafeBufferPointer(start: embeddingStorage + firstRow * hidden, count: rows * hidden))
    }

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
        var reader = WeightReader(source: source)
        let D = c.hiddenSize
        let rows = [c.vocabSize, c.maxPositionEmbeddings, c.typeVocabSize]
        let storage = allocateFloats(rows.reduce(0, +) * D)
        embeddingStorage = storage
        do {
            var offset = 0
            for (module, n) in zip(
                [
                    BertTensorNames.wordEmbeddings, BertTensorNames.positionEmbeddings,
                    BertTensorNames.tokenTypeEmbeddings,
                ],
                rows)
            {
                let values = try reader.load(BertTensorNames.weight(module), [n, D])
                values.withUnsafeBufferPointer { (storage + offset).update(from: $0.baseAddress!, count: n * D) }
                offset += n * D
            }
            embeddingsLayerNorm = try reader.layerNorm(BertTensorNames.embeddingsLayerNorm, D)
            layers = try (0..<c.numHiddenLayers).map { try reader.encoderLayer($0, c) }
            (pooler, classifier) = try reader.head(c)
        } catch {
            storage.deallocate()
            throw error
        }
        fingerprint = reader.fingerprint.string
        parameterCount = reader.parameterCount
        let word = UnsafePointer(storage)
        parameters = BertParameters(
            config: c,
            embeddings: EmbeddingTables(
                word: word, tokenType: word + (rows[0] + rows[1]) * D, position: word + rows[0] * D),
            embeddingsLayerNorm: embeddingsLayerNorm, layers: layers,
            head: classifier.map { [pooler] in HeadParameters(pooler: pooler, classifier: $0) })
    }

    deinit { embeddingStorage.deallocate() }
}

/// Reads a checkpoint's tensors under the name variants real checkpoints use, checking shapes and finiteness,
/// and fingerprints what it reads.
struct WeightReader {
    let source: TensorSource
    let prefix: String  // "bert." or ""
    var fingerprint = Fingerprinter()
    var parameterCount = 0

    init(source: TensorSource) {
        self.source = source
        let probe = BertTensorNames.prefix + BertTensorNames.weight(BertTensorNames.wordEmbeddings)
        prefix = source.info(probe) != nil ? BertTensorNames.prefix : ""
    }

    /// The checkpoint's own name for a name inside `bert.` (or, `top`, at the top level), or nil.
    func resolve(_ canonical: String, top: Bool = false) -> String? {
        var candidates = top ? [canonical] : [prefix + canonical]
        if canonical.hasSuffix("LayerNorm.weight") { candidates.append(prefix + canonical.dropLast(6) + "gamma") }
        if canonical.hasSuffix("LayerNorm.bias") { candidates.append(prefix + canonical.dropLast(4) + "beta") }
        return candidates.first { source.info($0) != nil }
    }

    mutating func load(_ name: String, _ shape: [Int], top: Bool = false) throws -> [Float] {
        guard let resolved = resolve(name, top: top), let info = source.info(resolved) else {
            throw CheckpointError.missingTensor(path: source.path, name: (top ? "" : prefix) + name)
        }
        guard info.shape == shape else {
            throw CheckpointError.shapeMismatch(path: source.path, name: resolved, expected: shape, found: info.shape)
        }
        let v = try source.floats(resolved)
        // A NaN or infinity in any weight makes every logit NaN, which would be scored as label 0.
        if let bad = v.firstIndex(where: { !$0.isFinite }) {
            throw ModelError.badInput(
                "\(source.path): tensor '\(resolved)' holds \(v[bad]) at index \(bad); non-finite weights make every prediction NaN — re-export the checkpoint"
            )
        }
        v.withUnsafeBufferPointer { fingerprint.add(name: name, shape: shape, values: $0) }
        parameterCount += v.count
        source.release(resolved)
        return v
    }

    mutating func linear(_ module: String, out: Int, inp: Int, top: Bool = false) throws -> PackedLinear {
        let w = try load(BertTensorNames.weight(module), [out, inp], top: top)
        let b = try load(BertTensorNames.bias(module), [out], top: top)
        return PackedLinear(weight: w, bias: b, n: out, k: inp)
    }

    mutating func layerNorm(_ module: String, _ D: Int) throws -> LayerNormWeights {
        LayerNormWeights(
            gamma: try load(BertTensorNames.weight(module), [D]), beta: try load(BertTensorNames.bias(module), [D]))
    }

    /// Layer `l`. Heads absent from a physically pruned checkpoint come back as zero rows of Q/K/V and zero columns
    /// of W_O, so their context is 0 and adds nothing — as in transformers.
    mutating func encoderLayer(_ l: Int, _ c: BertConfig) throws -> BertLayer {
        let names = BertTensorNames.layer(l)
        let (D, I, d) = (c.hiddenSize, c.intermediateSize, c.headDim)
        let present = (0..<c.numAttentionHeads).filter { !(c.prunedHeads[l] ?? []).contains($0) }
        let P = present.count * d
        var w: [Float] = []
        var b: [Float] = []
        for module in [names.query, names.key, names.value] {
            let rows = try load(BertTensorNames.weight(module), [P, D])
            let bias = try load(BertTensorNames.bias(module), [P])
            var fullW = [Float](repeating: 0, count: D * D)
            var fullB = [Float](repeating: 0, count: D)
            for (i, h) in present.enumerated() {
                fullW.replaceSubrange((h * d * D)..<((h + 1) * d * D), with: rows[(i * d * D)..<((i + 1) * d * D)])
                fullB.replaceSubrange((h * d)..<((h + 1) * d), with: bias[(i * d)..<((i + 1) * d)])
            }
            w += fullW
            b += fullB
        }
        let wo = try load(BertTensorNames.weight(names.attentionOutput), [D, P])
        var fullWO = [Float](repeating: 0, count: D * D)
        for r in 0..<D {
            for (i, h) in present.enumerated() {
                for e in 0..<d { fullWO[r * D + h * d + e] = wo[r * P + i * d + e] }
            }
        }
        let bo = try load(BertTensorNames.bias(names.attentionOutput), [D])
        return BertLayer(
            qkv: PackedLinear(weight: w, bias: b, n: 3 * D, k: D),
            attentionOutput: PackedLinear(weight: fullWO, bias: bo, n: D, k: D),
            attentionLayerNorm: try layerNorm(names.attentionLayerNorm, D),
            intermediate: try linear(names.intermediate, out: I, inp: D),
            output: try linear(names.output, out: D, inp: I),
            outputLayerNorm: try layerNorm(names.outputLayerNorm, D))
    }

    /// The pooler (when present) and the classifier (when present, which needs the pooler).
    mutating func head(_ c: BertConfig) throws -> (pooler: PackedLinear?, classifier: PackedLinear?) {
        let D = c.hiddenSize
        let poolerWeight = BertTensorNames.weight(BertTensorNames.pooler)
        let pooler = resolve(poolerWeight) != nil ? try linear(BertTensorNames.pooler, out: D, inp: D) : nil
        let classifierWeight = BertTensorNames.weight(BertTensorNames.classifier)
        guard let shape = source.info(classifierWeight)?.shape else { return (pooler, nil) }
        // The classifier reads the pooled [CLS]: without the pooler the logits would be silently wrong.
        guard pooler != nil else {
            let unknown = source.names.filter { $0.contains("pool") }
            throw CheckpointError.missingTensor(
                path: source.path,
                name: prefix + poolerWeight
                    + (unknown.isEmpty
                        ? "" : " (the checkpoint has \(unknown.joined(separator: ", ")) instead: misspelt?)"))
        }
        guard shape.count == 2, shape[1] == D else {
            throw CheckpointError.shapeMismatch(
                path: source.path, name: classifierWeight, expected: [c.numLabels, D], found: shape)
        }
        guard shape[0] == c.numLabels else {
            throw CheckpointError.shapeMismatch(
                path: source.path, name: classifierWeight + " (config.json id2label has \(c.numLabels) labels)",
                expected: [c.numLabels, D], found: shape)
        }
        return (pooler, try linear(BertTensorNames.classifier, out: c.numLabels, inp: D, top: true))
    }
}

extension BertModel {
    /// The transposed weights of the backward pass, built on first use and kept with the model.
    package var backwardWeights: BertBackwardWeights {
        lazyLock.lock()
        defer { lazyLock.unlock() }
        if let w = lazyBackward { return w }
        let w = BertBackwardWeights(parameters)
        lazyBackward = w
        return w
    }
}
