// Mean activations, what mean ablation replaces a pruned unit's output with: each head's context avg_head
// [L, H, d] and each MLP's output avg_mlp [L, D], averaged over every token of a dataset (the reference's
// procedure). Files: safetensors with the model's fingerprint, or the reference's pickles (read by a reader that
// executes nothing).
import Checkpoint
import Foundation

/// Mean activations for mean ablation: avg_head [L, H, d] and avg_mlp [L, D], flattened row-major.
public struct MeanActivations: Sendable {
    public var avgHead: [Float]
    public var avgMLP: [Float]
    public var fingerprint: String?

    public init(avgHead: [Float], avgMLP: [Float], fingerprint: String? = nil) {
        self.avgHead = avgHead
        self.avgMLP = avgMLP
        self.fingerprint = fingerprint
    }
}

extension MeanActivations {
    /// A safetensors file with avg_head [L, H, d] and avg_mlp [L, D] (F32), fingerprint in metadata; or the
    /// reference's pickled activations (Checkpoint/ReferenceActivations.swift).
    public static func load(path: String, model: BertModel) throws -> (MeanActivations, warning: String?) {
        if isPickleFile(path) {
            return try load(bytes: try referenceActivationsSafetensors(pickle: path), name: path, model: model)
        }
        return try load(SafetensorsFile(path: path), model: model)
    }

    /// The same, handing the warning (a file without a model fingerprint) to `warn`.
    public static func load(path: String, model: BertModel, warn: (String) -> Void) throws -> MeanActivations {
        let (acts, warning) = try load(path: path, model: model)
        if let warning { warn("warning: \(warning)") }
        return acts
    }

    /// A set stored inside a subnetwork store (`SubnetworkStore.activationSet`), read without a temporary file.
    public static func load(bytes: [UInt8], name: String, model: BertModel) throws -> (
        MeanActivations, warning: String?
    ) {
        try load(SafetensorsFile(file: MappedFile(data: bytes, name: name)), model: model)
    }

    static func load(_ f: SafetensorsFile, model: BertModel) throws -> (MeanActivations, warning: String?) {
        let path = f.path
        let L = model.layerCount
        let H = model.headCount
        let d = model.headDim
        let D = model.hidden
        for (name, shape) in [("avg_head", [L, H, d]), ("avg_mlp", [L, D])] {
            guard let i = f.info(name) else { throw CheckpointError.missingTensor(path: path, name: name) }
            guard i.shape == shape else {
                throw CheckpointError.shapeMismatch(path: path, name: name, expected: shape, found: i.shape)
            }
        }
        let acts = MeanActivations(
            avgHead: try f.floats("avg_head"), avgMLP: try f.floats("avg_mlp"),
            fingerprint: f.metadata["model_fingerprint"])
        for (name, values) in [("avg_head", acts.avgHead), ("avg_mlp", acts.avgMLP)] {
            if let bad = values.firstIndex(where: { !$0.isFinite }) {
                throw ModelError.badInput(
                    "\(path): \(name) holds \(values[bad]) at index \(bad); mean activations must be finite (recompute them with `hcore activations`)"
                )
            }
        }
        try model.checkActivations(acts)
        let warning =
            acts.fingerprint == nil
            ? "\(path) carries no model fingerprint; assuming it was computed for this model" : nil
        return (acts, warning)
    }

    public func write(path: String, model: BertModel, extraMetadata: [String: String] = [:]) throws {
        var w = SafetensorsWriter()
        w.metadata = extraMetadata.merging(["model_fingerprint": model.fingerprint, "format": "hcore-activations-1"]) {
            $1
        }
        w.add("avg_head", shape: [model.layerCount, model.headCount, model.headDim], avgHead)
        w.add("avg_mlp", shape: [model.layerCount, model.hidden], avgMLP)
        try w.write(to: path)
    }
}

/// Accumulates mean activations (per-head context and MLP output) over every token of every batch,
/// in Double, as the golden procedure does.
public final class ActivationAccumulator: ForwardObserver {
    let L: Int, H: Int, d: Int, D: Int
    var headSums: [Double]
    var mlpSums: [Double]
    public private(set) var tokens = 0

    public init(model: BertModel) {
        L = model.layerCount
        H = model.headCount
        d = model.headDim
        D = model.hidden
        headSums = [Double](repeating: 0, count: L * H * d)
        mlpSums = [Double](repeating: 0, count: L * D)
    }

    public func embeddings(_ x: UnsafePointer<Float>, tokens n: Int) { tokens += n }

    public func attentionContext(layer: Int, _ ctx: UnsafePointer<Float>, tokens n: Int) {
        let width = H * d
        headSums.withUnsafeMutableBufferPointer { s in
            let base = s.baseAddress! + layer * width
            for t in 0..<n {
                let row = ctx + t * width
                for c in 0..<width { base[c] += Double(row[c]) }
            }
        }
    }

    public func mlpOutput(layer: Int, _ m: UnsafePointer<Float>, tokens n: Int) {
        mlpSums.withUnsafeMutableBufferPointer { s in
            let base = s.baseAddress! + layer * D
            for t in 0..<n {
                let row = m + t * D
                for c in 0..<D { base[c] += Double(row[c]) }
            }
        }
    }

    public func result(fingerprint: String) -> MeanActivations {
        let n = Double(max(1, tokens))
        return MeanActivations(
            avgHead: headSums.map { Float($0 / n) }, avgMLP: mlpSums.map { Float($0 / n) }, fingerprint: fingerprint)
    }
}
