// Replaying a run of another implementation: its initial log α and its hard-concrete noise, read from a
// safetensors file as `FILE` (the file's one tensor) or `FILE:NAME` (a named tensor, e.g. the trajectory
// golden's `clip.u`), checked against the model's unit count before anything runs.
import Checkpoint
import Failures
import Foundation
import Model

public enum ReplayInputs {
    /// The tensor `spec` names: [Float] and its shape.
    public static func tensor(_ spec: String) throws -> (values: [Float], shape: [Int]) {
        var path = spec
        var name: String?
        if !FileManager.default.fileExists(atPath: spec), let colon = spec.lastIndex(of: ":") {
            path = String(spec[..<colon])
            name = String(spec[spec.index(after: colon)...])
        }
        let file = try SafetensorsFile(path: path)
        guard let chosen = name ?? (file.names.count == 1 ? file.names[0] : nil) else {
            throw ModelError.badInput(
                "\(path) holds \(file.names.count) tensors (\(file.names.prefix(8).joined(separator: ", "))); name one as \(path):NAME"
            )
        }
        guard let info = file.info(chosen) else {
            throw CheckpointError.missingTensor(path: path, name: chosen)
        }
        let values = try file.floats(chosen)
        guard values.allSatisfy(\.isFinite) else {
            throw ModelError.badInput("\(spec) holds values that are not finite")
        }
        return (values, info.shape)
    }

    /// Initial log α: U values (heads layer-major, then the MLPs).
    public static func initialLogAlpha(_ spec: String, units U: Int) throws -> [Float] {
        let (v, shape) = try tensor(spec)
        guard v.count == U else {
            throw ModelError.badInput(
                "\(spec) has shape \(shape); the model has \(U) units (heads layer-major, then one MLP per layer)")
        }
        return v
    }

    /// Noise: one row of U uniforms in (0, 1) per micro-batch, [micro-batches, U].
    public static func noise(_ spec: String, units U: Int, microBatches: Int) throws -> [[Double]] {
        let (v, shape) = try tensor(spec)
        guard shape.count == 2, shape[1] == U, shape[0] >= microBatches else {
            throw ModelError.badInput(
                "\(spec) has shape \(shape); replaying this run needs [\(microBatches), \(U)] (micro-batches × units) or more rows"
            )
        }
        guard v.allSatisfy({ $0 > 0 && $0 < 1 }) else {
            throw ModelError.badInput("\(spec): noise values must lie strictly between 0 and 1")
        }
        return (0..<shape[0]).map { r in v[(r * U)..<((r + 1) * U)].map(Double.init) }
    }
}

extension PruneRuns {
    /// The inputs of a replayed run: `initialLogAlpha` when it names a file rather than a number (a number is
    /// the config's mean), and the noise file, which replays one seed.
    public mutating func replay(initialLogAlpha spec: String, noise: String?, units U: Int) throws {
        if Double(spec) == nil { initialLogAlpha = try ReplayInputs.initialLogAlpha(spec, units: U) }
        guard let noise else { return }
        guard seeds.count == 1 else { throw SettingError("noise", "replays one run: give one seed") }
        self.noise = try ReplayInputs.noise(
            noise, units: U, microBatches: config.maxSteps * config.gradientAccumulationSteps)
    }
}
