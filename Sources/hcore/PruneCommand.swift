// `hcore prune`: find subnetworks by L0 pruning, into the store.
import ArgumentParser
import Checkpoint
import Eval
import Failures
import Foundation
import Model
import Prune
import Store
import Tokenizer

struct PruneCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prune",
        abstract: "L0 structured pruning of heads and MLPs, weights frozen, mean ablation, KL to the full model.",
        discussion: """
            One hard-concrete gate per head and per MLP block; loss = KL(full ‖ subnetwork) + λ1·(t − s) + λ2·(t − s)² with λ trained by gradient ascent; AdamW on log α and λ with linear warm-up and decay: the training step of the reference's src/pruning/prune-glue.py under HF's Trainer, step for step (tested against its replayed trajectory). Each seed's final masks (the deterministic rule at --threshold), log-alphas and training history are written into --store.

              hcore prune --model DIR --train train.tsv --activations acts.safetensors \\
                  --store subs.hcs --target-sparsity 0.5 --seeds 42-53

            The defaults equal the paper's: sparsity warm-up 6500 + 50·sp steps, total = warm-up + 6·sp (sp: the target in percent, as scripts/pruning/prune-all-*.sh), learning rate 0.1 (log α) and 1 (λ), 200 warm-up steps, batch 32, accumulation 4, max length 128, a global gradient-norm clip at 1.0, get_linear_schedule_with_warmup's learning rate (step/warm-up: step 0 runs at 0), and the subnetwork in training mode: the config's hidden and attention-probability dropout (the full model it is compared with runs without).

            The reference's spellings are accepted (--target_sparsity, --per_device_train_batch_size, --initialize_from for --model, --avg_activation_path for --activations, --save_steps for --checkpoint-steps, …), so a line of prune-all-mnli.sh pastes in; its PyTorch-only flags (--dataloader_num_workers, --do_train, …) are ignored with a warning, and --glue_path, --task_name, --output_dir and --do_eval stop with a line naming hcore's flag.

            Replaying another implementation's run: --initial-log-alpha FILE:NAME, --noise FILE:NAME, --no-shuffle and --dropout 0; --trace FILE writes every step (the keys of the reference's trajectory), also what you plot.

            Interruptions lose little: every --checkpoint-steps the run's whole state goes to STORE.prune-NAME.json, and rerunning the same command continues from it (seeds already in the store are skipped). Clusters: --shard i/n (or a Slurm array) takes every n-th seed and writes STORE.shard-i-of-n, so that parallel jobs never write one file; combine them with `hcore store merge STORE STORE.shard-*`.
            """)
    @Option(help: ArgumentHelp("Hugging Face model folder (the reference's --initialize_from).", valueName: "dir"))
    var model: String?
    @Option(help: ArgumentHelp("Training set (GLUE TSV, HANS, JSONL, CSV; .zst).", valueName: "file")) var train: String
    @Option(
        help: ArgumentHelp(
            "Mean activations (`hcore activations`); the reference's --avg_activation_path.", valueName: "file"))
    var activations: String?
    @Option(help: ArgumentHelp("Store to write the subnetworks into (created if missing).", valueName: "store"))
    var store: String?
    @Option(
        help: ArgumentHelp(
            "Grid mode, instead of --model: prune every checkpoint-STEP folder here (`hcore finetune --save-steps`) at every --target-sparsities value and seed; each cell is one run (and one Slurm array task with --shard), written into --grid-out/checkpoint-STEP.hcs with its step, target and seed; mean activations per checkpoint over the first --activation-examples training pairs.",
            valueName: "dir")) var checkpoints: String?
    @Option(
        name: .customLong("target-sparsities"),
        help: ArgumentHelp("Grid mode: the targets, e.g. 0.3,0.5,0.7 (default: --target-sparsity).", valueName: "list"))
    var targetList: String?
    @Option(
        name: .customLong("grid-out"),
        help: ArgumentHelp("Grid mode: the folder of the per-checkpoint stores.", valueName: "dir")) var gridOut:
        String?
    @Option(
        name: .customLong("activation-examples"),
        help: "Grid mode: training pairs averaged for each checkpoint's mean activations.") var activationExamples:
        Int = 2000
    @Option(
        name: .customLong("target-sparsity"),
        help: "Fraction of heads and MLPs to remove (--target_sparsity; 0.5 = half).") var targetSparsity: Double = 0.5
    @Option(
        name: .customLong("start-sparsity"),
        help: "Target at step 0, raised to --target-sparsity over the sparsity warm-up (--start_sparsity).")
    var startSparsity: Double = 0.0
    @Option(
        name: .customLong("num-sparsity-warmup-steps"),
        help:
            "Steps over which the target rises (--num_sparsity_warmup_steps). Default: 6500 + 50·sp, sp the target in percent (scripts/pruning/prune-all-*.sh)."
    ) var sparsityWarmup: Int?
    @Option(
        name: .customLong("max-steps"),
        help: "Optimizer steps in all (--max_steps). Default: the sparsity warm-up + 6·sp (the same scripts).")
    var maxSteps: Int?
    @Option(name: .customLong("learning-rate"), help: "Peak learning rate of log α (--learning_rate).")
    var learningRate: Double = 0.1
    @Option(
        name: .customLong("reg-learning-rate"),
        help:
            "Learning rate of λ1, λ2 (--reg_learning_rate; the paper's 1 suits KLs of order 0.1–1). Scale it with the KL: on a model whose predictions barely vary (minilm-nli's untrained head: KL of a constant output 0.007), λ at 1 swamps the KL term and the gates close at random; 0.01 finds subnetworks with KLs 4–6× below random ones' (BENCHMARKS.md)."
    ) var regLearningRate: Double = 1.0
    @Option(name: .customLong("warmup-steps"), help: "Learning-rate warm-up steps (--warmup_steps).") var warmupSteps:
        Int = 200
    @Option(
        name: .customLong("gradient-accumulation-steps"),
        help: "Batches per optimizer step (--gradient_accumulation_steps).") var accumulation: Int = 4
    @Option(name: .customLong("per-device-train-batch-size"), help: "Pairs per batch (--per_device_train_batch_size).")
    var batchSize: Int = 32
    @Option(name: .customLong("warmup-type"), help: "How the target rises: linear or logarithmic (--warmup_type).")
    var warmupType: String = "linear"
    @Option(help: "One seed (--seed).") var seed: UInt64 = 42
    @Option(help: ArgumentHelp("Several seeds, e.g. 42-53 or 1,5,9 (one subnetwork each).", valueName: "list"))
    var seeds: String?
    @Option(
        help:
            "Stored masks: a unit is kept if its deterministic soft value exceeds this (the reference's eval --threshold-for-deterministic)."
    ) var threshold: Float = 0.5
    @Option(name: .customLong("max-train-samples"), help: "Use the first N training pairs (--max_train_samples).")
    var maxTrainSamples: Int?
    @Option(name: .customLong("max-seq-length"), help: "Truncate pairs to this many tokens (--max_seq_length).")
    var maxLength: Int = 128
    @Option(help: "Name prefix of the stored subnetworks.") var name: String = "prune"
    @Option(
        help:
            "Hidden and attention-probability dropout in the subnetwork (default: the config's hidden_dropout_prob and attention_probs_dropout_prob, as the reference's training mode); 0 turns both off."
    ) var dropout: Float?
    @Option(
        name: .customLong("initial-log-alpha"),
        help: ArgumentHelp(
            "A number: the mean of the initial log α (the paper's 10; lower for short runs). FILE or FILE:NAME: the starting log α itself (safetensors, heads layer-major then MLPs), to replay a run.",
            valueName: "value|file")) var initialLogAlpha: String = "10"
    @Option(
        help: ArgumentHelp(
            "Hard-concrete noise u to replay a run: safetensors [micro-batches, units], FILE or FILE:NAME. One seed.",
            valueName: "file")) var noise: String?
    @Flag(
        name: .customLong("no-shuffle"), help: "Take batches in file order instead of reshuffling every pass (replays)."
    ) var noShuffle = false
    @Option(
        help: ArgumentHelp(
            "Write every optimizer step as a JSON line (target, learning rates, gradient norm before clipping, λ, each micro-batch's KL and sparsity, log α, evaluations).",
            valueName: "file")) var trace: String?
    @Option(
        name: .customLong("ref-initialize-from"),
        help: ArgumentHelp(
            "Pull the subnetwork towards this model's predictions instead of the pruned model's own (the reference's --ref_initialize_from).",
            valueName: "dir")) var referenceModel: String?
    @Option(
        name: .customLong("eval-data"),
        help: ArgumentHelp(
            "Evaluate the deterministic masks on this set every --eval-steps (KL to the full model; accuracy when it has labels).",
            valueName: "file")) var evalData: String?
    @Option(
        name: .customLong("eval-steps"),
        help: "Steps between evaluations (with --eval-data; --eval_steps, 512 in the reference's scripts).")
    var evalSteps: Int = 512
    @Option(
        name: .customLong("max-eval-samples"),
        help: "The first N examples of --eval-data (--max_eval_samples, 2000 in the reference's scripts).")
    var maxEvalSamples: Int = 2000
    @Option(name: .customLong("logging-steps"), help: "Steps between log lines (--logging_steps).") var loggingSteps:
        Int = 100
    @Option(
        name: .customLong("checkpoint-steps"),
        help: "Save the run's whole state every N steps, to resume from (0: never; --save_steps maps here).")
    var checkpointSteps: Int = 100
    @Option(
        name: .customLong("max-grad-norm"),
        help:
            "Clip the global gradient norm (log α and λ) to this after accumulation, as the reference's Trainer (--max_grad_norm); 0 turns clipping off."
    ) var maxGradNorm: Double = 1.0
    @Option(
        help: ArgumentHelp(
            "Run only shard i of n of the seeds (default from SLURM_ARRAY_TASK_ID/COUNT).", valueName: "i/n"))
    var shard: String?

    func config(target targetSparsity: Double) -> PruneConfig {
        var c = PruneConfig()
        let recipe = referenceRecipe(targetSparsity: targetSparsity)
        c.targetSparsity = targetSparsity
        c.startSparsity = startSparsity
        c.sparsityWarmupSteps = sparsityWarmup ?? recipe.warmup
        c.maxSteps = maxSteps ?? c.sparsityWarmupSteps + recipe.total - recipe.warmup
        c.learningRate = learningRate
        c.regLearningRate = regLearningRate
        c.warmupSteps = warmupSteps
        c.gradientAccumulationSteps = accumulation
        c.batchSize = batchSize
        c.shuffle = !noShuffle
        c.warmupType = warmupType
        c.threshold = threshold
        c.dropout = dropout
        c.initialLogAlpha = Double(initialLogAlpha) ?? 10
        c.maxGradNorm = maxGradNorm
        return c
    }

    func validate() throws {
        guard (0..<1).contains(targetSparsity), (0..<1).contains(startSparsity) else {
            throw UsageError("--target-sparsity and --start-sparsity must lie in [0, 1)")
        }
        guard ["linear", "logarithmic"].contains(warmupType) else {
            throw UsageError("--warmup-type must be linear or logarithmic")
        }
        if let dropout, !(0..<1).contains(dropout) { throw UsageError("--dropout must lie in [0, 1)") }
    }

    func run() throws {
        if let checkpoints { return try runGrid(checkpoints) }
        guard let modelPath = model, let store, let activations else {
            throw UsageError(
                "give --model DIR, --store FILE and --activations FILE (or grid mode: --checkpoints DIR --grid-out DIR)"
            )
        }
        var seeds = try PruneRuns.seedList(self.seeds, default: seed)
        var storePath = store
        if let s = try shardSpec(shard) {  // shards write their own store file; `hcore store merge` combines them
            seeds = s.share(seeds)
            storePath = "\(store).shard-\(s.index)-of-\(s.count)"
            warn("shard \(s.index)/\(s.count): seeds \(seeds.map(String.init).joined(separator: ",")) → \(storePath)")
        }
        let (model, tok) = (try BertModel.load(folder: modelPath), try BertTokenizer.load(folder: modelPath))
        let options = PredictionOptions(maxLength: maxLength)
        let encodings = try encodeAll(
            try Dataset.loadNonEmpty(train, limit: maxTrainSamples).examples, tokenizer: tok, options: options)
        var runs = PruneRuns(
            config: config(target: targetSparsity), seeds: seeds, namePrefix: name, source: "hcore prune \(train)",
            checkpointEvery: checkpointSteps)
        try runs.replay(initialLogAlpha: initialLogAlpha, noise: noise, units: model.layerCount * (model.headCount + 1))
        runs.reference = try referenceModel.map { try BertModel.load(folder: $0) }
        runs.evaluation = try evalData.map {
            try PruneEvaluation(
                path: $0, limit: maxEvalSamples, every: evalSteps, model: model, tokenizer: tok, options: options)
        }
        (runs.tracePath, runs.logEvery) = (trace, loggingSteps)
        let acts = try MeanActivations.load(path: activations, model: model, warn: warn)
        let s = try SubnetworkStore.openOrCreate(path: storePath, for: model)
        let bars = seeds.map { ProgressBar("prune seed \($0)", total: runs.config.maxSteps) }
        try runs.run(
            into: s, model: model, encodings: encodings, activations: acts, log: warn,
            onStep: { k, st in bars[k].update(st.step + 1) })
    }

    /// Grid mode: this task's cells (all, or every n-th with --shard / a Slurm array), each resumable.
    func runGrid(_ folder: String) throws {
        guard model == nil, store == nil, activations == nil, let gridOut else {
            throw UsageError(
                "grid mode takes --checkpoints DIR and --grid-out DIR instead of --model, --store and --activations")
        }
        let targets = try targetList.map(PruneGrid.targets) ?? [targetSparsity]
        let grid = PruneGrid(
            checkpoints: try checkpointFolders(folder), targets: targets,
            seeds: try PruneRuns.seedList(seeds, default: seed), folder: gridOut)
        let mine = try shardSpec(shard).map { $0.share(grid.cells) } ?? grid.cells
        try grid.run(
            mine, config: config(target:), examples: try Dataset.loadNonEmpty(train, limit: maxTrainSamples).examples,
            options: PredictionOptions(maxLength: maxLength),
            activationExamples: activationExamples, namePrefix: name, checkpointEvery: checkpointSteps, log: warn)
    }
}
