// `hcore prune`: find subnetworks by L0 pruning, into the store.
import ArgumentParser
import Checkpoint
import Eval
import Failures
import Foundation
import Model
import Prune

struct PruneCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prune",
        abstract: "L0 structured pruning of heads and MLPs, weights frozen, mean ablation, KL to the full model.",
        discussion: """
        One hard-concrete gate per head and per MLP block; loss = KL(full ‖ subnetwork) + λ1·(t − s) + λ2·(t − s)² \
        with λ trained by gradient ascent; AdamW on log α and λ with linear warm-up and decay. Flags keep the \
        names of the reference script (src/pruning/prune-glue.py). Each seed's final masks (the deterministic \
        rule at --threshold), log-alphas and training history are written into --store.
          hcore prune --model DIR --train train.tsv --activations acts.safetensors --store subs.hcs \\
                      --target-sparsity 0.5 --seeds 42-53
        The defaults equal the paper's: sparsity warm-up 6500 + 50·sp steps, total = warm-up + 6·sp (sp: the target in percent), learning \
        rate 0.1 (log α) and 1 (λ), 200 warm-up steps, batch 32, accumulation 4, max length 128, and the \
        subnetwork in training mode (hidden dropout from config.json; --dropout 0 turns it off), a global gradient-norm clip at 1.0 \
        (--max-grad-norm), and get_linear_schedule_with_warmup's learning rate (step/warm-up: step 0 runs at 0). \
        Interruptions lose little: every --checkpoint-steps the run's whole state goes to STORE.prune-NAME.json, \
        and rerunning the same command continues from it (seeds already in the store are skipped). \
        Clusters: --shard i/n (or a Slurm array) takes every n-th seed and writes STORE.shard-i-of-n, so that \
        parallel jobs never write one file; combine them with `hcore store merge STORE STORE.shard-*`.
        """)

    @OptionGroup var modelOptions: ModelOptions
    @Option(help: ArgumentHelp("Training set (GLUE TSV, HANS, JSONL, CSV; .zst).", valueName: "file")) var train: String
    @Option(help: ArgumentHelp("Mean activations (`hcore activations`).", valueName: "file")) var activations: String
    @Option(help: ArgumentHelp("Store to write the subnetworks into (created if missing).", valueName: "store")) var store: String
    @Option(name: .customLong("target-sparsity")) var targetSparsity: Double = 0.5
    @Option(name: .customLong("start-sparsity")) var startSparsity: Double = 0.0
    @Option(name: .customLong("num-sparsity-warmup-steps"), help: "Default: 6500 + 50·sp, sp the target in percent (scripts/pruning/prune-all-*.sh).") var sparsityWarmup: Int?
    @Option(name: .customLong("max-steps"), help: "Default: the sparsity warm-up + 6·sp (the same scripts).") var maxSteps: Int?
    @Option(name: .customLong("learning-rate")) var learningRate: Double = 0.1
    @Option(name: .customLong("reg-learning-rate"), help: """
        Learning rate of λ1, λ2 (the paper's 1 suits KLs of order 0.1–1). Scale it with the KL: on a model whose \
        predictions barely vary (minilm-nli's untrained head: KL of a constant output 0.007), λ at 1 swamps the KL \
        term and the gates close at random; 0.01 finds subnetworks with KLs 4–6× below random ones' (BENCHMARKS.md).
        """) var regLearningRate: Double = 1.0
    @Option(name: .customLong("warmup-steps")) var warmupSteps: Int = 200
    @Option(name: .customLong("gradient-accumulation-steps")) var accumulation: Int = 4
    @Option(name: .customLong("per-device-train-batch-size")) var batchSize: Int = 32
    @Option(name: .customLong("warmup-type"), help: "linear or logarithmic.") var warmupType: String = "linear"
    @Option(help: "One seed.") var seed: UInt64 = 42
    @Option(help: ArgumentHelp("Several seeds, e.g. 42-53 or 1,5,9 (one subnetwork each).", valueName: "list")) var seeds: String?
    @Option(help: "Kept if the deterministic soft value exceeds this.") var threshold: Float = 0.5
    @Option(name: .customLong("max-train-samples")) var maxTrainSamples: Int?
    @Option(name: .customLong("max-seq-length")) var maxLength: Int = 128
    @Option(help: "Name prefix of the stored subnetworks.") var name: String = "prune"
    @Option(help: "Hidden dropout in the subnetwork (default: the config's hidden_dropout_prob, as the reference).") var dropout: Float?
    @Option(name: .customLong("initial-log-alpha"), help: "Mean of the initial log α (the paper's 10; lower for short runs).") var initialLogAlpha: Double = 10
    @Option(name: .customLong("checkpoint-steps"), help: "Save the run's state every N steps (0: never).") var checkpointSteps: Int = 100
    @Option(name: .customLong("max-grad-norm"), help: "Clip the global gradient norm (log α and λ) to this after accumulation, as the reference's Trainer (--max_grad_norm); 0 turns clipping off.") var maxGradNorm: Double = 1.0
    @Option(help: ArgumentHelp("Run only shard i of n of the seeds (default from SLURM_ARRAY_TASK_ID/COUNT).", valueName: "i/n")) var shard: String?

    func seedList() throws -> [UInt64] {
        guard let seeds else { return [seed] }
        if let dash = seeds.firstIndex(of: "-"), let a = UInt64(seeds[..<dash]), let b = UInt64(seeds[seeds.index(after: dash)...]), a <= b {
            return Array(a...b)
        }
        let list = seeds.split(separator: ",").compactMap { UInt64($0) }
        guard !list.isEmpty else { throw UsageError("--seeds takes A-B or a comma-separated list") }
        return list
    }

    var config: PruneConfig {
        var c = PruneConfig()
        let recipe = referenceRecipe(targetSparsity: targetSparsity)
        c.targetSparsity = targetSparsity; c.startSparsity = startSparsity; c.sparsityWarmupSteps = sparsityWarmup ?? recipe.warmup
        c.maxSteps = maxSteps ?? c.sparsityWarmupSteps + recipe.total - recipe.warmup; c.learningRate = learningRate; c.regLearningRate = regLearningRate
        c.warmupSteps = warmupSteps; c.gradientAccumulationSteps = accumulation; c.batchSize = batchSize
        c.warmupType = warmupType; c.threshold = threshold; c.dropout = dropout; c.initialLogAlpha = initialLogAlpha; c.maxGradNorm = maxGradNorm
        return c
    }

    func run() throws {
        guard (0..<1).contains(targetSparsity), (0..<1).contains(startSparsity) else { throw UsageError("--target-sparsity and --start-sparsity must lie in [0, 1)") }
        guard ["linear", "logarithmic"].contains(warmupType) else { throw UsageError("--warmup-type must be linear or logarithmic") }
        if let dropout, !(0..<1).contains(dropout) { throw UsageError("--dropout must lie in [0, 1)") }
        var seeds = try seedList(), storePath = store
        // Shards write their own store file; `hcore store merge` combines them.
        if let s = try shardSpec(shard) {
            seeds = seeds.enumerated().filter { $0.offset % s.count == s.index - 1 }.map(\.element)
            storePath = "\(store).shard-\(s.index)-of-\(s.count)"
            warn("shard \(s.index)/\(s.count): seeds \(seeds.map(String.init).joined(separator: ",")) → \(storePath)")
        }
        let (model, tok) = try modelOptions.load()
        let acts = try MeanActivations.load(path: activations, model: model, warn: warn)
        let encodings = try encodeAll(try loadExamples(train, limit: maxTrainSamples).examples, tokenizer: tok, options: PredictionOptions(maxLength: maxLength))
        let s = try SubnetworkStore.openOrCreate(path: storePath, for: model)
        let runs = PruneRuns(config: config, seeds: seeds, namePrefix: name, source: "hcore prune \(train)", checkpointEvery: checkpointSteps)
        let bars = seeds.map { Progress("prune seed \($0)", total: runs.config.maxSteps) }
        try runs.run(into: s, model: model, encodings: encodings, activations: acts, log: warn, onStep: { k, st in bars[k].update(st.step + 1) })
    }
}
