// The paper's effective-size and learning-dynamics grid (the comment atop the reference's prune-all-*.sh):
// every (fine-tuning checkpoint, target sparsity, seed) cell pruned as one run. A cell is what one Slurm array
// task runs (`--shard i/n` takes every n-th cell); all cells of one checkpoint write into that checkpoint's
// store, GRID/checkpoint-STEP.hcs (the store takes concurrent writers), each subnetwork carrying its seed,
// target sparsity and fine-tuning step in its metadata. Each store also keeps the mean activations of its
// checkpoint (set "train", over the first training examples), computed by whichever cell needs them first.
// Every cell is resumable: a stored cell is skipped, an interrupted one continues from its checkpoint file.
import Checkpoint
import Eval
import Failures
import Foundation
import Model
import Store
import Tokenizer

public struct PruneGrid {
    public struct Cell: Sendable, Equatable {
        public let step: Int, path: String, target: Double, seed: UInt64
    }
    /// Checkpoint-major, then target, then seed: consecutive cells share a model.
    public let cells: [Cell]
    public let folder: String

    public init(checkpoints: [(step: Int, path: String)], targets: [Double], seeds: [UInt64], folder: String) {
        cells = checkpoints.flatMap { c in
            targets.flatMap { t in seeds.map { Cell(step: c.step, path: c.path, target: t, seed: $0) } }
        }
        self.folder = folder
    }

    public func storePath(step: Int) -> String { folder + "/checkpoint-\(step).hcs" }

    /// "0.3,0.5,0.7" → targets, each in [0, 1).
    public static func targets(_ list: String) throws -> [Double] {
        try list.split(separator: ",", omittingEmptySubsequences: false).map { t in
            guard let v = Double(t.trimmingCharacters(in: .whitespaces)), (0..<1).contains(v) else {
                throw SettingError("targetSparsities", "takes numbers in [0, 1) separated by commas, got '\(t)'")
            }
            return v
        }
    }

    /// Runs `cells` (this task's share). `config(target)` gives each cell's recipe; the first
    /// `activationExamples` training examples make a checkpoint's mean activations.
    public func run(
        _ cells: [Cell], config: (Double) -> PruneConfig, examples: [Example], options: PredictionOptions,
        activationExamples: Int, namePrefix: String, checkpointEvery: Int, log: @escaping (String) -> Void,
        onStep: ((Cell, PruneStep) -> Void)? = nil
    ) throws {
        try makeFolder(folder)
        log("grid: \(self.cells.count) cells (checkpoints × targets × seeds); this task runs \(cells.count)")
        var tokenizer: BertTokenizer?
        var encodings: [Encoding] = []
        for step in cells.map(\.step).reduce(into: [Int](), { if $0.last != $1 { $0.append($1) } }) {
            let mine = cells.filter { $0.step == step }
            let model = try BertModel.load(folder: mine[0].path)
            if tokenizer == nil {  // one run's checkpoints share a tokenizer: tokenize once
                tokenizer = try BertTokenizer.load(folder: mine[0].path)
                encodings = try encodeAll(examples, tokenizer: tokenizer!, options: options)
            }
            let store = try SubnetworkStore.openOrCreate(path: storePath(step: step), for: model)
            let activations = try self.activations(
                store, model: model, encodings: Array(encodings.prefix(activationExamples)), log: log)
            for cell in mine {
                var runs = PruneRuns(
                    config: config(cell.target), seeds: [cell.seed], namePrefix: namePrefix,
                    source: "hcore prune grid \(cell.path)", checkpointEvery: checkpointEvery)
                runs.extraMeta = [("step", .int(step)), ("checkpoint", .string(cell.path))]
                log("cell checkpoint-\(step) · target \(cell.target) · seed \(cell.seed) → \(store.path)")
                try runs.run(
                    into: store, model: model, encodings: encodings, activations: activations, log: log,
                    onStep: { onStep?(cell, $1) })
            }
        }
    }

    /// The store's set "train", made and added when missing (two tasks may both make it: the same numbers).
    func activations(_ store: SubnetworkStore, model: BertModel, encodings: [Encoding], log: (String) -> Void) throws
        -> MeanActivations
    {
        if store.activationSets.contains(where: { $0.name == "train" }) {
            return try store.meanActivations("train", model: model)
        }
        let (acts, tokens) = try meanActivations(model: model, encodings: encodings, batchSize: 32)
        let temp = store.path + ".activations-\(getpid()).safetensors"
        defer { unlink(temp) }
        try acts.write(path: temp, model: model)
        try store.addActivations(name: "train", file: temp)
        log("mean activations of \(store.path)'s model over \(tokens) tokens → its set 'train'")
        return acts
    }
}
