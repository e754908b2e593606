// Subnetworks: masks, mean activations, and compiled execution plans.
//
// Semantics (Heuristic-Core's modeling code; Tests/Fixtures/golden/GOLDEN-README.md §4):
//   head h of layer l:  ctx_h ← (ctx_h − avg_head[l,h])·z + avg_head[l,h]   (mean ablation)
//                       ctx_h ← ctx_h · z                                   (zero ablation)
//   MLP of layer l:     m ← (m − avg_mlp[l])·z + avg_mlp[l]   or   m · z
// For binary masks the plan below computes the same function without computing pruned units:
//   pruned head h → its context is the constant avg_h, so W_O·ctx gains the constant W_O[:, h]·avg_h,
//   folded into the output bias; pruned MLP → the constant avg_mlp[l] (or 0) added to the residual.
import Checkpoint
import Foundation
import Kernels

extension ExecutionPlan {
    /// Compiles binary masks into a plan that computes only kept units. Throws for non-binary masks.
    public static func compile(model: BertModel, masks: MaskValues, ablation: Ablation) throws -> ExecutionPlan {
        try model.checkMasks(masks, ablation)
        guard masks.isBinary else {
            throw ModelError.badInput(
                "a compiled plan needs binary masks (0 or 1); use the general path for fractional masks")
        }
        let H = model.headCount
        let d = model.headDim
        let D = model.hidden
        var layers: [LayerPlan] = []
        for (l, layer) in model.layers.enumerated() {
            let kept = (0..<H).filter { masks.heads[l][$0] == 1 }
            let pruned = (0..<H).filter { masks.heads[l][$0] == 0 }
            // b_O + Σ_pruned W_O[:, h·d ..< (h+1)·d] · avg_h   (accumulated in Double)
            var bias = (layer.attentionOutput.biasArray ?? [Float](repeating: 0, count: D)).map(Double.init)
            if case .mean(let avg) = ablation, !pruned.isEmpty {
                let cols = pruned.flatMap { h in (h * d)..<((h + 1) * d) }
                layer.attentionOutput.accumulateColumns(
                    cols, times: cols.map { Double(avg.avgHead[l * H * d + $0]) }, into: &bias)
            }
            let foldedBias = bias.map(Float.init)
            let mlpConstant: [Float]?
            if masks.mlps[l] == 0 {
                if case .mean(let avg) = ablation {
                    mlpConstant = Array(avg.avgMLP[(l * D)..<((l + 1) * D)])
                } else {
                    mlpConstant = [Float](repeating: 0, count: D)
                }
            } else {
                mlpConstant = nil
            }
            if kept.isEmpty {
                layers.append(
                    LayerPlan(
                        keptHeads: [], qkv: nil, attentionOutput: nil, attentionConstant: foldedBias,
                        mlpConstant: mlpConstant))
            } else if kept.count == H {
                layers.append(
                    LayerPlan(
                        keptHeads: kept, qkv: layer.qkv, attentionOutput: layer.attentionOutput,
                        attentionConstant: nil, mlpConstant: mlpConstant))
            } else {
                let headRows = kept.flatMap { h in (h * d)..<((h + 1) * d) }
                let qkvRows = headRows + headRows.map { $0 + D } + headRows.map { $0 + 2 * D }
                layers.append(
                    LayerPlan(
                        keptHeads: kept, qkv: layer.qkv.gatherRows(qkvRows),
                        attentionOutput: layer.attentionOutput.gatherColumns(headRows, bias: foldedBias),
                        attentionConstant: nil, mlpConstant: mlpConstant))
            }
        }
        return ExecutionPlan(layers: layers)
    }

    /// Multiply-adds of one token through the encoder under this plan, excluding attention's T-dependent
    /// part (see `flops(model:sequenceLengths:)`).
    public func denseMACsPerToken(model: BertModel) -> Int {
        let D = model.hidden
        let I = model.config.intermediateSize
        let d = model.headDim
        var macs = 0
        for lp in layers {
            let k = lp.keptHeads.count * d
            macs += 3 * k * D + k * D
            if lp.mlpConstant == nil { macs += 2 * D * I }
        }
        return macs
    }

    /// FLOPs (2 × multiply-adds) of the encoder on sequences of the given lengths: dense layers plus
    /// attention's QKᵀ and PV products for kept heads. `clsOnlyLastLayer`: count the work hcore actually
    /// does when only logits are needed (the last layer's K/V for every token, the rest for [CLS] rows).
    public func flops(model: BertModel, sequenceLengths: [Int], clsOnlyLastLayer: Bool = false) -> Double {
        model.flops(
            keptHeads: layers.map { $0.keptHeads.count }, mlps: layers.map { $0.mlpConstant == nil },
            sequenceLengths: sequenceLengths, clsOnlyLastLayer: clsOnlyLastLayer)
    }
}

// MARK: mask files

extension MaskValues {
    /// {"heads": [[L rows of H values]], "mlps": [L values]}
    public static func load(path: String) throws -> MaskValues {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CheckpointError.cannotOpen(path: path, reason: "no such file")
        }
        return try parse(data, path: path)
    }

    /// A mask file's bytes, read as if from `path` (named in errors).
    public static func parse(_ data: Data, path: String) throws -> MaskValues {
        guard let j = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw CheckpointError.malformed(
                path: path, offset: nil, reason: "a mask file is a JSON object {\"heads\": [[…]], \"mlps\": […]}")
        }
        return try MaskValues(json: j, path: path)
    }

    public init(json j: [String: Any], path: String) throws {
        func numbers(_ v: Any?, _ what: String) throws -> [Float] {
            guard let a = v as? [Any] else {
                throw CheckpointError.malformed(path: path, offset: nil, reason: "\(what) is not a list of numbers")
            }
            return try a.map {
                guard let n = $0 as? NSNumber else {
                    throw CheckpointError.malformed(path: path, offset: nil, reason: "\(what) holds a non-number")
                }
                return n.floatValue
            }
        }
        guard let rows = j["heads"] as? [Any] else {
            throw CheckpointError.malformed(path: path, offset: nil, reason: "no \"heads\" list of per-layer lists")
        }
        let heads = try rows.enumerated().map { try numbers($0.element, "heads[\($0.offset)]") }
        let mlps = try numbers(j["mlps"], "\"mlps\"")
        self.init(heads: heads, mlps: mlps)
    }

    public var json: JSONValue {
        .object([("heads", .array(heads.map { JSONValue.floats($0) })), ("mlps", .floats(mlps))])
    }
}

// MARK: mean activation files

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

extension BertModel {
    /// FLOPs (2 × multiply-adds) of the encoder for a subnetwork (nil: the full model) on sequences of
    /// the given lengths — the same count as `ExecutionPlan.flops`, straight from the masks.
    public func flops(masks: MaskValues?, sequenceLengths: [Int], clsOnlyLastLayer: Bool = false) -> Double {
        flops(
            keptHeads: (0..<layerCount).map { l in masks.map { m in m.heads[l].filter { $0 != 0 }.count } ?? headCount
            },
            mlps: (0..<layerCount).map { l in masks.map { $0.mlps[l] != 0 } ?? true },
            sequenceLengths: sequenceLengths, clsOnlyLastLayer: clsOnlyLastLayer)
    }

    /// FLOPs with `keptHeads[l]` heads and MLP `mlps[l]` present in layer l (see ExecutionPlan.flops).
    public func flops(keptHeads: [Int], mlps: [Bool], sequenceLengths: [Int], clsOnlyLastLayer: Bool = false) -> Double
    {
        let D = hidden
        let I = config.intermediateSize
        let d = headDim
        let tokens = sequenceLengths.reduce(0, +)
        let sequences = sequenceLengths.count
        let squares = sequenceLengths.reduce(0) { $0 + $1 * $1 }
        var macs = 0
        for l in 0..<layerCount {
            let kept = keptHeads[l]
            let mlp = mlps[l]
            if clsOnlyLastLayer && l == layerCount - 1 {
                // firstQueryAttention: scores u_h·x_t and sums Σ p_t x_t over every token, per kept head; per
                // sequence the query, u_h = W_K,hᵀ q_h, W_V,h r_h, W_O and the MLP on the [CLS] row.
                macs += 2 * kept * D * tokens + (4 * kept * d * D + (mlp ? 2 * D * I : 0)) * sequences
            } else {
                macs += (4 * kept * d * D + (mlp ? 2 * D * I : 0)) * tokens + 2 * squares * d * kept
            }
        }
        return 2 * Double(macs)
    }

    /// Bytes a compiled plan of these binary masks allocates beyond the model's own weights.
    public func planBytes(masks: MaskValues) -> Int {
        let D = hidden
        let d = headDim
        let compiled = (0..<layerCount).reduce(0) { acc, l in
            let kept = masks.heads[l].filter { $0 != 0 }.count
            return acc + (kept > 0 && kept < headCount ? 4 * (4 * kept * d * D + 3 * kept * d + D) : 0)
        }
        // The last layer's W_Q (packed, with its bias), W_K and W_Vᵀ (plain) and b_V for [CLS]-only evaluation
        // (LayerPlan.firstQueryWeights), made on first use.
        let lastKept = masks.heads[layerCount - 1].filter { $0 != 0 }.count
        return compiled + 4 * (3 * lastKept * d * D + 2 * lastKept * d)
    }
}
