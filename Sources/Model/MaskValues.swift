// A subnetwork's masks: one value per head [L][H] and per MLP [L], 1 = kept, 0 = pruned, fractions for soft
// masks (Heuristic-Core's semantics: Blocks/SoftMasks.swift). In unit order (heads layer-major, then MLPs) they
// are what the store keeps; from log-alphas they follow the reference's deterministic rule (HardConcrete.swift).
// A mask file is {"heads": [[…]], "mlps": […]}.
import Checkpoint
import Failures
import Foundation

/// Continuous mask values, one per head [L][H] and per MLP [L], 1 = kept, 0 = pruned.
public struct MaskValues: Equatable, Sendable {
    public var heads: [[Float]]
    public var mlps: [Float]

    public init(heads: [[Float]], mlps: [Float]) {
        self.heads = heads
        self.mlps = mlps
    }

    public static func ones(layers: Int, heads: Int) -> MaskValues {
        MaskValues(
            heads: Array(repeating: Array(repeating: 1, count: heads), count: layers),
            mlps: Array(repeating: 1, count: layers))
    }

    public var isBinary: Bool { (heads.joined() + mlps).allSatisfy { $0 == 0 || $0 == 1 } }
    public var unitCount: Int { heads.reduce(0) { $0 + $1.count } + mlps.count }
    public var keptCount: Float { heads.joined().reduce(0, +) + mlps.reduce(0, +) }
}

extension MaskValues {
    /// Units in store order (heads layer-major, then MLPs) ↔ MaskValues.
    public init(units: [Float], layers: Int, heads: Int) {
        self.init(
            heads: (0..<layers).map { Array(units[($0 * heads)..<(($0 + 1) * heads)]) },
            mlps: Array(units[(layers * heads)..<(layers * heads + layers)]))
    }

    public var units: [Float] { heads.flatMap { $0 } + mlps }

    /// Heuristic-Core's evaluation masks from log-alphas in unit order: the deterministic rule per module
    /// (each layer's heads together, each MLP alone), soft values, or binary at `threshold`.
    public static func fromLogAlpha(_ logAlpha: [Float], layers: Int, heads: Int, threshold: Float?) -> MaskValues {
        var units: [Float] = []
        for l in 0..<layers {
            units +=
                HardConcrete.deterministic(Array(logAlpha[(l * heads)..<((l + 1) * heads)]), threshold: threshold).mask
        }
        for l in 0..<layers {
            units += HardConcrete.deterministic([logAlpha[layers * heads + l]], threshold: threshold).mask
        }
        return MaskValues(units: units, layers: layers, heads: heads)
    }
}

extension MaskValues {
    /// Fraction of units pruned: 1 − Σ mask / unit count (soft masks count their value).
    public var sparsity: Double { 1 - Double(keptCount) / Double(max(1, unitCount)) }
}

extension MaskValues {
    /// {"heads": [[L rows of H values]], "mlps": [L values]}
    public static func load(path: String) throws -> MaskValues {
        return try parse(Data(try InputFiles.read(path)), path: path)
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
