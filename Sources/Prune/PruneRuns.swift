// Many pruning runs into one store: one subnetwork per seed, each stored with its log-alphas and a
// thinned history. A run interrupted part-way resumes from its checkpoint file next to the store; a seed
// whose subnetwork is already stored is skipped, so rerunning the same command finishes the job.
import Checkpoint
import Failures
import Foundation
import Model
import Store
import Tokenizer

/// What happened to one seed, for drivers that print their own progress (the demo) instead of parsing log lines.
public enum PruneRunEvent: Equatable {
    /// The seed's subnetwork is already in the store.
    case skipped(seed: UInt64, name: String)
    /// An interrupted run continues from its checkpoint at `step`.
    case resuming(seed: UInt64, step: Int)
    /// The run finished and its subnetwork is committed to the store.
    case stored(seed: UInt64, name: String, sparsity: Double, seconds: Double)
}

public struct PruneRuns {
    public var config: PruneConfig
    public var seeds: [UInt64]
    /// Subnetworks are named "<namePrefix>-t<target>-seed<seed>".
    public var namePrefix: String
    /// Recorded in each subnetwork's metadata ("source").
    public var source: String
    /// Save the run's state every this many steps (0: never).
    public var checkpointEvery: Int
    /// A log line every this many steps (the reference's --logging_steps).
    public var logEvery = 100
    /// Replay inputs (one seed): the starting log α and the hard-concrete noise (`prune`).
    public var initialLogAlpha: [Float]? = nil
    public var noise: [[Double]]? = nil
    /// The model the KL pulls towards (--ref-initialize-from); nil: the pruned model itself.
    public var reference: BertModel? = nil
    public var evaluation: PruneEvaluation? = nil
    /// More metadata for every stored subnetwork (the grid's step and checkpoint).
    public var extraMeta: [(String, JSONValue)] = []
    /// Where the per-step trace goes (`PruneTrace`); with several seeds each gets "-seedN" before the extension.
    public var tracePath: String? = nil

    public init(config: PruneConfig, seeds: [UInt64], namePrefix: String, source: String, checkpointEvery: Int) {
        self.config = config
        self.seeds = seeds
        self.namePrefix = namePrefix
        self.source = source
        self.checkpointEvery = checkpointEvery
    }

    /// Seeds as written: "A-B" (inclusive) or "a,b,c"; nil: the one `seed`.
    public static func seedList(_ list: String?, default seed: UInt64) throws -> [UInt64] {
        guard let list else { return [seed] }
        let parts = list.split(separator: "-", omittingEmptySubsequences: false)
        if parts.count == 2, let a = UInt64(parts[0]), let b = UInt64(parts[1]), a <= b, b - a < 100_000 {
            return Array(a...b)
        }
        let seeds = list.split(separator: ",", omittingEmptySubsequences: false).map {
            UInt64($0.trimmingCharacters(in: .whitespaces))
        }
        guard !seeds.isEmpty, !seeds.contains(nil) else {
            throw SettingError("seeds", "takes A-B (A ≤ B) or a comma-separated list of seeds, got '\(list)'")
        }
        return seeds.map { $0! }
    }

    public func name(seed: UInt64) -> String { "\(namePrefix)-t\(config.targetSparsity)-seed\(seed)" }

    /// Runs every seed not yet in `store`. `log` gets a line per run and every 100 steps; `onStep` every step
    /// with the seed's position in `seeds`; `onRun` each seed's skip, resume and commit.
    public func run(
        into store: SubnetworkStore, model: BertModel, encodings: [Encoding], activations: MeanActivations,
        log: @escaping (String) -> Void, onStep: ((Int, PruneStep) -> Void)? = nil,
        onRun: ((PruneRunEvent) -> Void)? = nil
    ) throws {
        // one forward of the full model per example, for every seed
        let fullDistributions = FullModelDistributions(count: encodings.count)
        for (k, seed) in seeds.enumerated() {
            let runName = name(seed: seed)
            let checkpointPath = "\(store.path).prune-\(runName).json"
            removeStaleTemporaries(of: checkpointPath)
            if store.subnetworks.contains(where: { $0.name == runName }) {
                unlink(checkpointPath)  // a run stopped between its commit and this removal
                log("seed \(seed): '\(runName)' is already in \(store.path); skipped")
                onRun?(.skipped(seed: seed, name: runName))
                continue
            }
            var c = config
            c.seed = seed
            let resume = try Self.readCheckpoint(checkpointPath, run: runName)
            if let resume {
                log("seed \(seed): resuming from \(checkpointPath) at step \(resume.step)")
                onRun?(.resuming(seed: seed, step: resume.step))
            }
            let started = Date()
            let trace = try tracePath.map {
                try PruneTrace(path: traceFile($0, seed: seed), resumeStep: resume?.step ?? 0)
            }
            var traceError: Error?
            let r = try prune(
                model: model, encodings: encodings, activations: activations, config: c,
                initialLogAlpha: initialLogAlpha,
                noise: noise, reference: reference, evaluation: evaluation, resume: resume,
                resumeFile: checkpointPath, checkpointEvery: checkpointEvery,
                checkpoint: { state in
                    if let traceError { throw traceError }
                    try trace?.sync()  // the trace holds every step the checkpoint does
                    // a resumed run read this file: its next checkpoint replaces it
                    try writeAtomically(
                        try Self.checkpointBytes(state, run: runName), to: checkpointPath, replacingInput: true)
                }, fullDistributions: fullDistributions,
                onStep: { st in
                    onStep?(k, st)
                    do { try trace?.append(st) } catch { traceError = traceError ?? error }
                    if st.step % max(1, logEvery) == 0 || st.step == c.maxSteps - 1 { log(Self.describe(st)) }
                })
            if let traceError { throw traceError }
            let seconds = Date().timeIntervalSince(started)
            try store.add([stored(r, name: runName, config: c, seconds: seconds, dropout: c.dropouts(for: model))])
            unlink(checkpointPath)
            log("seed \(seed): \(String(format: "%.3f", r.achievedSparsity)) sparsity, stored in \(store.path)")
            onRun?(.stored(seed: seed, name: runName, sparsity: r.achievedSparsity, seconds: seconds))
        }
    }

    func traceFile(_ path: String, seed: UInt64) -> String {
        guard seeds.count > 1 else { return path }
        let ext = (path as NSString).pathExtension
        return ext.isEmpty ? "\(path)-seed\(seed)" : "\((path as NSString).deletingPathExtension)-seed\(seed).\(ext)"
    }

    /// A checkpoint file: a header line naming the run, the state's length and its CRC-32, then the state as
    /// JSON — so a damaged or truncated file, or one of another run, is refused instead of resumed.
    public static func checkpointBytes(_ state: PruneState, run: String) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys  // the same state, the same bytes
        let body = Array(try encoder.encode(state))
        let header: JSONValue = .object([
            ("hcore_prune_checkpoint", 1), ("run", .string(run)), ("bytes", .int(body.count)),
            ("crc32", .int(Int(crc32(body)))),
        ])
        return Array(header.compact.utf8) + [UInt8(ascii: "\n")] + body
    }

    /// The state a checkpoint holds (nil when there is none), refused with the file named when it is damaged.
    static func readCheckpoint(_ path: String, run: String) throws -> PruneState? {
        guard let bytes = try InputFiles.readIfPresent(path, limit: 1 << 30) else { return nil }
        return try checkpoint(bytes, path: path, run: run)
    }

    /// `readCheckpoint`'s work once the file is read (the fuzzers enter here).
    public static func checkpoint(_ bytes: [UInt8], path: String, run: String) throws -> PruneState {
        func refuse(_ why: String) -> Error {
            ModelError.badInput("\(path) is not a usable pruning checkpoint (\(why)); delete it to start over")
        }
        guard let newline = bytes.firstIndex(of: UInt8(ascii: "\n")),
            let header = try? JSONValue.parse(String(decoding: bytes[..<newline], as: UTF8.self), path: path),
            header.get("hcore_prune_checkpoint")?.intValue == 1, let length = header.get("bytes")?.intValue,
            let sum = header.get("crc32")?.intValue
        else { throw refuse("no checkpoint header") }
        guard header.get("run")?.stringValue == run else { throw refuse("it belongs to another run") }
        let body = Array(bytes[(newline + 1)...])
        guard body.count == length, Int(crc32(body)) == sum else {
            throw refuse(
                "\(body.count) bytes where the header says \(length), or a checksum that differs: it is damaged")
        }
        do { return try JSONDecoder().decode(PruneState.self, from: Data(body)) } catch {
            throw refuse("\(error)")
        }
    }

    static func describe(_ st: PruneStep) -> String {
        var line = String(
            format: "step %d  kl %.5f  lagrangian %+.4f  target %.3f  expected %.3f  sampled %.3f  λ %.3f %.3f",
            st.step, st.kl, st.lagrangian, st.target, st.expectedSparsity, st.sampledSparsity, st.lambda1, st.lambda2)
        if let e = st.evaluation {
            line +=
                String(format: "  eval kl %.5f sparsity %.3f", e.kl, e.sparsity)
                + (e.accuracy.map { String(format: " accuracy %.4f", $0) } ?? "")
        }
        return line
    }

    func stored(
        _ r: PruneResult, name: String, config c: PruneConfig, seconds: Double,
        dropout: (hidden: Float, attention: Float)
    ) -> StoredSubnetwork {
        let history = JSONValue.array(
            r.history.filter { $0.step % 50 == 0 || $0.step == c.maxSteps - 1 || $0.evaluation != nil }.map { st in
                var fields: [(String, JSONValue)] = [
                    ("step", .int(st.step)), ("kl", .float(st.kl)), ("expected_sparsity", .float(st.expectedSparsity)),
                    ("target", .float(st.target)),
                ]
                if let e = st.evaluation {
                    fields += [("eval_kl", .float(e.kl)), ("eval_accuracy", e.accuracy.map { .float($0) } ?? .null)]
                }
                return .object(fields)
            })
        return StoredSubnetwork(
            name: name, mask: r.masks.units.map { UInt8($0) }, logAlpha: r.logAlpha,
            meta: .object(
                [
                    ("seed", .unsigned(c.seed)), ("target_sparsity", .float(c.targetSparsity)),
                    ("sparsity", .float(r.achievedSparsity)),
                    ("steps", .int(c.maxSteps)), ("final_kl", .float(r.history.last?.kl ?? .nan)),
                    ("source", .string(source)),
                    ("threshold", .float32(c.threshold)), ("dropout", .float32(dropout.hidden)),
                    ("attention_dropout", .float32(dropout.attention)),
                    ("created", .string(ISO8601DateFormatter().string(from: Date()))), ("seconds", .float(seconds)),
                    ("history", history),
                ] + extraMeta))
    }
}
