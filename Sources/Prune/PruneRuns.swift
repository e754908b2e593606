// Many pruning runs into one store: one subnetwork per seed, each stored with its log-alphas and a
// thinned history. A run interrupted part-way resumes from its checkpoint file next to the store; a seed
// whose subnetwork is already stored is skipped, so rerunning the same command finishes the job.
import Checkpoint
import Foundation
import Model
import Tokenizer

public struct PruneRuns {
    public var config: PruneConfig
    public var seeds: [UInt64]
    /// Subnetworks are named "<namePrefix>-t<target>-seed<seed>".
    public var namePrefix: String
    /// Recorded in each subnetwork's metadata ("source").
    public var source: String
    /// Save the run's state every this many steps (0: never).
    public var checkpointEvery: Int

    public init(config: PruneConfig, seeds: [UInt64], namePrefix: String, source: String, checkpointEvery: Int) {
        self.config = config
        self.seeds = seeds
        self.namePrefix = namePrefix
        self.source = source
        self.checkpointEvery = checkpointEvery
    }

    public func name(seed: UInt64) -> String { "\(namePrefix)-t\(config.targetSparsity)-seed\(seed)" }

    /// Runs every seed not yet in `store`. `log` gets a line per run and every 100 steps; `onStep` every step
    /// with the seed's position in `seeds`.
    public func run(into store: SubnetworkStore, model: BertModel, encodings: [Encoding], activations: MeanActivations,
                    log: @escaping (String) -> Void, onStep: ((Int, PruneStep) -> Void)? = nil) throws {
        for (k, seed) in seeds.enumerated() {
            let runName = name(seed: seed)
            if store.subnetworks.contains(where: { $0.name == runName }) {
                log("seed \(seed): '\(runName)' is already in \(store.path); skipped")
                continue
            }
            var c = config
            c.seed = seed
            let checkpointPath = "\(store.path).prune-\(runName).json"
            let resume = try Self.readCheckpoint(checkpointPath)
            if let resume { log("seed \(seed): resuming from \(checkpointPath) at step \(resume.step)") }
            let started = Date()
            let r = try prune(model: model, encodings: encodings, activations: activations, config: c, resume: resume, checkpointEvery: checkpointEvery,
                              checkpoint: { state in try writeAtomically(Array(try JSONEncoder().encode(state)), to: checkpointPath) },
                              onStep: { st in
                onStep?(k, st)
                if st.step % 100 == 0 || st.step == c.maxSteps - 1 { log(Self.describe(st)) }
            })
            try store.add([stored(r, name: runName, config: c, seconds: Date().timeIntervalSince(started), dropout: c.dropout ?? model.config.hiddenDropoutProb)])
            unlink(checkpointPath)
            log("seed \(seed): \(String(format: "%.3f", r.achievedSparsity)) sparsity, stored in \(store.path)")
        }
    }

    static func readCheckpoint(_ path: String) throws -> PruneState? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        do { return try JSONDecoder().decode(PruneState.self, from: data) } catch {
            throw ModelError.badInput("\(path) is not a readable pruning checkpoint (\(error)); delete it to start over")
        }
    }

    static func describe(_ st: PruneStep) -> String {
        String(format: "step %d  kl %.5f  lagrangian %+.4f  target %.3f  expected %.3f  sampled %.3f  λ %.3f %.3f",
               st.step, st.kl, st.lagrangian, st.target, st.expectedSparsity, st.sampledSparsity, st.lambda1, st.lambda2)
    }

    func stored(_ r: PruneResult, name: String, config c: PruneConfig, seconds: Double, dropout: Float) -> StoredSubnetwork {
        let history = JSONValue.array(r.history.filter { $0.step % 50 == 0 || $0.step == c.maxSteps - 1 }.map { st in
            .object([("step", .int(st.step)), ("kl", .float(st.kl)), ("expected_sparsity", .float(st.expectedSparsity)), ("target", .float(st.target))])
        })
        return StoredSubnetwork(name: name, mask: r.masks.units.map { UInt8($0) }, logAlpha: r.logAlpha, meta: .object([
            ("seed", .int(Int(c.seed))), ("target_sparsity", .float(c.targetSparsity)), ("sparsity", .float(r.achievedSparsity)),
            ("steps", .int(c.maxSteps)), ("final_kl", .float(r.history.last?.kl ?? .nan)), ("source", .string(source)),
            ("threshold", .float32(c.threshold)), ("dropout", .float32(dropout)),
            ("created", .string(ISO8601DateFormatter().string(from: Date()))), ("seconds", .float(seconds)), ("history", history),
        ]))
    }
}
