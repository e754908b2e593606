// A subnetwork store belongs to one model: its fingerprint and its layers × heads layout. This file binds
// the two: checking a store against a model, making a store for one, reading its activation sets, and
// importing the reference's pruned checkpoints into it.
import Checkpoint
import Failures
import Foundation
import Model
import Store

extension StoreLayout {
    public init(_ model: BertModel) { self.init(layers: model.layerCount, heads: model.headCount) }
}

extension SubnetworkStore {
    /// Refuses a store made for another model.
    public func check(against model: BertModel) throws {
        guard fingerprint == model.fingerprint else {
            throw CheckpointError.mismatch(
                path: path,
                reason:
                    "belongs to model \(fingerprint), but \(model.folder) is \(model.fingerprint); use the model the subnetworks were pruned from"
            )
        }
        guard layout == StoreLayout(model) else {
            throw CheckpointError.mismatch(
                path: path,
                reason:
                    "has a \(layout.layers)×\(layout.heads) layout; the model has \(model.layerCount)×\(model.headCount)"
            )
        }
    }

    /// Opens the store at `path` (checked against `model`), or creates an empty one for it.
    public static func openOrCreate(path: String, for model: BertModel) throws -> SubnetworkStore {
        var s: SubnetworkStore
        if FileManager.default.fileExists(atPath: path) {
            s = try open(path: path)
        } else {
            // Another process may create it first (two jobs starting together): then open theirs.
            do { s = try create(path: path, fingerprint: model.fingerprint, layout: StoreLayout(model)) } catch {
                guard FileManager.default.fileExists(atPath: path) else { throw error }
                s = try open(path: path)
            }
        }
        try s.check(against: model)
        return s
    }

    /// Opens a store, saying in one line through `warn` when it was read as of an earlier commit (an append was
    /// cut off); with `model`, refuses a store of another model.
    public static func open(path: String, model: BertModel? = nil, warn: (String) -> Void) throws -> SubnetworkStore {
        let s = try SubnetworkStore.open(path: path)
        if let note = s.recoveryNote { warn("warning: \(path): \(note)") }
        if let model { try s.check(against: model) }
        return s
    }

    /// The named activation set (default: the only one), for `model`.
    public func meanActivations(_ name: String?, model: BertModel) throws -> MeanActivations {
        guard let name = name ?? (activationSets.count == 1 ? activationSets[0].name : nil) else {
            throw CheckpointError.notFound(
                path: path,
                reason: activationSets.isEmpty
                    ? "holds no activation set: give mean activations, or zero ablation, or add a set to the store"
                    : "holds several activation sets (\(activationSets.map(\.name).joined(separator: ", "))); choose one"
            )
        }
        guard activationSets.contains(where: { $0.name == name }) else {
            throw CheckpointError.notFound(
                path: path,
                reason:
                    "has no activation set '\(name)' (it has: \(activationSets.map(\.name).joined(separator: ", ")))")
        }
        return try MeanActivations.load(bytes: try activationSet(name), name: "\(path)[\(name)]", model: model).0
    }

    /// Mean activations from `file` when given, else the store's activation set `name` (default: its only
    /// one). With `required` false, a store without a single set gives nil instead of an error.
    public func meanActivations(
        file: String?, set name: String?, model: BertModel, required: Bool, warn: (String) -> Void
    ) throws -> MeanActivations? {
        if let file { return try MeanActivations.load(path: file, model: model, warn: warn) }
        guard required || name != nil || activationSets.count == 1 else { return nil }
        return try meanActivations(name, model: model)
    }

    /// Adds a safetensors file of mean activations (or the reference's pickle) under `name`, refusing one computed for another model.
    public func addActivations(name: String, file: String) throws {
        let st =
            isPickleFile(file)
            ? try SafetensorsFile(file: MappedFile(data: try referenceActivationsSafetensors(pickle: file), name: file))
            : try SafetensorsFile(path: file)
        if let fp = st.metadata["model_fingerprint"], fp != fingerprint {
            throw CheckpointError.mismatch(
                path: file, reason: "was computed for model \(fp); \(path) belongs to \(fingerprint)")
        }
        // The set's shapes must fit this store's layout: avg_head [L, H, d], avg_mlp [L, H·d].
        let L = layout.layers
        let H = layout.heads
        guard let head = st.info("avg_head"), head.shape.count == 3, head.shape[0] == L, head.shape[1] == H,
            let mlp = st.info("avg_mlp"), mlp.shape == [L, H * head.shape[2]]
        else {
            throw CheckpointError.mismatch(
                path: file,
                reason:
                    "is not a mean-activation set for a \(L)×\(H) model (needs avg_head [\(L), \(H), d] and avg_mlp [\(L), \(H)·d]; make it with `hcore activations`)"
            )
        }
        // Refused now, not when a later command uses the set: a mean activation must be finite.
        for tensor in ["avg_head", "avg_mlp"] {
            let values = try st.floats(tensor)
            if let bad = values.firstIndex(where: { !$0.isFinite }) {
                throw ModelError.badInput(
                    "\(file): \(tensor) holds \(values[bad]) at index \(bad); mean activations must be finite")
            }
        }
        try addActivations(name: name, safetensors: st.file.slice(0..<st.file.count))
    }
}

/// The reference's pruning gates in a model folder (model.safetensors or pytorch_model.bin): the log-alphas
/// `bert.encoder.layer.N.attention.self.log_alpha_heads` [H] and `bert.encoder.layer.N.output.log_alpha_mlp` [1]
/// in unit order; nil when the checkpoint has none (an unpruned BERT).
public func referenceLogAlpha(folder: String, layout: StoreLayout) throws -> [Float]? {
    let st = folder + "/model.safetensors"
    let bin = folder + "/pytorch_model.bin"
    guard FileManager.default.fileExists(atPath: st) || FileManager.default.fileExists(atPath: bin) else {
        throw ModelError.notAModelFolder(path: folder, reason: "has no model.safetensors or pytorch_model.bin")
    }
    let source: TensorSource =
        FileManager.default.fileExists(atPath: st) ? try SafetensorsFile(path: st) : try TorchCheckpoint(path: bin)
    let prefix = BertTensorNames.prefix
    let heads = (0..<layout.layers).map { prefix + BertTensorNames.layer($0).logAlphaHeads }
    let mlps = (0..<layout.layers).map { prefix + BertTensorNames.layer($0).logAlphaMLP }
    guard (heads + mlps).contains(where: { source.info($0) != nil }) else { return nil }
    func logAlphas(_ name: String, count: Int) throws -> [Float] {
        guard let i = source.info(name) else { throw CheckpointError.missingTensor(path: source.path, name: name) }
        guard i.elementCount == count else {
            throw CheckpointError.shapeMismatch(path: source.path, name: name, expected: [count], found: i.shape)
        }
        let values = try source.floats(name)
        if let bad = values.first(where: { !$0.isFinite }) {
            throw CheckpointError.malformed(path: source.path, offset: nil, reason: "\(name) holds \(bad)")
        }
        return values
    }
    return try heads.flatMap { try logAlphas($0, count: layout.heads) } + mlps.flatMap { try logAlphas($0, count: 1) }
}

/// One pruned run of the reference's PyTorch code (a folder with its log-alphas) as a stored subnetwork: its
/// log α, the mask the reference's deterministic rule makes binary at `threshold`, and what the folder's name
/// says (`referenceRunMeta`) with `extra` KEY=VALUE pairs over it; nil for an unpruned checkpoint. Both
/// `store import-heuristic-core` and evaluating a run folder directly read a run through this.
public func referenceRunSubnetwork(
    folder: String, layout: StoreLayout, threshold: Float = 0.5, meta extra: [String] = []
) throws -> StoredSubnetwork? {
    guard threshold.isFinite, (0...1).contains(threshold) else {
        throw SettingError("threshold", "must be a number in [0, 1], got \(threshold)")
    }
    guard let la = try referenceLogAlpha(folder: folder, layout: layout) else { return nil }
    let m = MaskValues.fromLogAlpha(la, layers: layout.layers, heads: layout.heads, threshold: threshold)
    let (name, run) = referenceRunMeta(folder)
    let given = try extra.map { kv -> (String, JSONValue) in
        guard let eq = kv.firstIndex(of: "="), eq != kv.startIndex else {
            throw SettingError("meta", "\(kv): use KEY=VALUE")
        }
        let value = String(kv[kv.index(after: eq)...])
        return (String(kv[..<eq]), Int(value).map { .int($0) } ?? Double(value).map { .float($0) } ?? .string(value))
    }
    let fields = run.filter { k, _ in !given.contains { $0.0 == k } } + given
    return StoredSubnetwork(
        name: name, mask: m.units.map { UInt8($0) }, logAlpha: la,
        meta: .object(
            fields + [
                ("source", .string(folder)), ("threshold", .float32(threshold)), ("sparsity", .float(m.sparsity)),
                ("imported", .string(ISO8601DateFormatter().string(from: Date()))),
            ]))
}

/// `referenceRunSubnetwork` for an import: a checkpoint without log-alphas is refused by name.
public func importHeuristicCoreCheckpoint(
    folder: String, layout: StoreLayout, threshold: Float, meta extra: [String] = []
) throws -> StoredSubnetwork {
    guard let sub = try referenceRunSubnetwork(folder: folder, layout: layout, threshold: threshold, meta: extra) else {
        throw DataError.badFile(
            path: folder,
            reason:
                "is an unpruned BERT checkpoint (no log_alpha_heads / log_alpha_mlp tensors): there is no subnetwork to import; give the reference's pruned run folders"
        )
    }
    return sub
}

/// What the reference's run-folder names say (scripts/pruning/prune-all-*.sh write
/// `models/pruned/<task>-seed<SEED><ablation>-<SPARSITY%>/`, checkpoints inside as `checkpoint-<STEP>`): the
/// subnetwork's name (the run folder, with its checkpoint) and metadata task, seed, ablation, target_sparsity
/// (a fraction) and step, for whichever parts the name has.
public func referenceRunMeta(_ folder: String) -> (name: String, meta: [(String, JSONValue)]) {
    // The name as given, never a link's target: a run folder reached through a symlink keeps the link's name.
    let absolute = folder.hasPrefix("/") ? folder : FileManager.default.currentDirectoryPath + "/" + folder
    var parts: [String] = []
    for part in absolute.split(separator: "/").map(String.init) where part != "." {
        if part == ".." { _ = parts.popLast() } else { parts.append(part) }
    }
    var meta: [(String, JSONValue)] = []
    if let last = parts.last, last.hasPrefix("checkpoint-"), parts.count > 1 {
        if let step = checkpointStep(last), last == "checkpoint-\(step)" { meta.append(("step", .int(step))) }
        parts.removeLast()
        let name = parts.last! + "/" + last
        return (name, runNameMeta(parts.last!) + meta)
    }
    let run = parts.last ?? folder
    return (run, runNameMeta(run))
}

/// `mnli-seed42mean-50` → task mnli, seed 42, ablation mean, target_sparsity 0.5 (nothing when the name differs).
func runNameMeta(_ run: String) -> [(String, JSONValue)] {
    guard let r = run.range(of: "-seed") else { return [] }
    let task = String(run[..<r.lowerBound])
    let rest = run[r.upperBound...]
    let digits = rest.prefix { $0.isNumber }
    guard let seed = Int(digits) else { return [] }
    var meta: [(String, JSONValue)] = [("task", .string(task)), ("seed", .int(seed))]
    let tail = rest.dropFirst(digits.count)
    let ablation = tail.prefix { $0.isLetter }
    if !ablation.isEmpty { meta.append(("ablation", .string(String(ablation)))) }
    let after = tail.dropFirst(ablation.count)
    if after.hasPrefix("-"), let pct = Int(after.dropFirst().prefix { $0.isNumber }), (0...100).contains(pct) {
        meta.append(("target_sparsity", .float(Double(pct) / 100)))
    }
    return meta
}
