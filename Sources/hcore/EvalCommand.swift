// `hcore eval`: the main job. A model and many subnetworks on ID and OOD sets, one pass.
import ArgumentParser
import Checkpoint
import Eval
import Failures
import Foundation
import Model
import Store
import Tokenizer

/// `hcore eval` is a group: `hcore eval …` runs (the default subcommand), `hcore eval merge FILE…` merges.
struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Evaluate a model and many of its subnetworks on in-domain and out-of-domain sets.",
        discussion:
            "`hcore eval --model DIR --data FILE …` runs an evaluation (its flags: `hcore eval run --help`); `hcore eval merge FILE…` combines the documents of sharded runs.",
        subcommands: [EvalRun.self, EvalMerge.self], defaultSubcommand: EvalRun.self)
}

struct EvalRun: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract:
            "Evaluate a model and many of its subnetworks on in-domain and out-of-domain sets (the default of `hcore eval`).",
        discussion: """
            Each dataset is tokenized once; each subnetwork runs through a compiled plan that skips its pruned heads and MLPs. Prints one JSON document (per subnetwork and dataset: accuracy, counts, confusion matrix; for HANS the six heuristic × label cells and 30 subcases, where neutral/contradiction count as non-entailment; F1 for QQP/PAWS). Formats are detected from the header (HANS, GLUE MNLI/QQP, PAWS) or extension (.jsonl, .csv); .zst files are read directly.
              hcore eval --model DIR --data dev_matched.tsv --data hans.txt.zst
              hcore eval --model DIR --store subs.hcs --data dev_matched.tsv --write-back
              hcore eval --model DIR --store subs.hcs --shard 2/8 … > part2.json
              hcore eval merge part*.json
            --format heuristic-core writes the reference repository's data/eval files (--shape), which its plotting scripts and `hcore figures` read. A directory as --data is read as a Hugging Face datasets folder.
            """)
    @Option(
        help: ArgumentHelp(
            "Hugging Face model folder: config.json, model.safetensors or pytorch_model.bin, vocab.txt or tokenizer.json.",
            valueName: "dir")) var model: String?
    @Option(
        help: ArgumentHelp(
            "Instead of --model: every checkpoint-STEP folder a fine-tuning run kept here (`hcore finetune --save-steps`), each as the full model, one result per checkpoint with its step (the reference's eval-mnli-all-checkpts.py, acc_over_ft).",
            valueName: "dir")) var checkpoints: String?
    @Option(name: .long, help: ArgumentHelp("Evaluation set (repeat for several).", valueName: "file")) var data:
        [String] = []
    @OptionGroup var maskOptions: MaskOptions
    @Option(help: ArgumentHelp("Evaluate the subnetworks of this store.", valueName: "store")) var store: String?
    @Option(
        parsing: .upToNextOption,
        help: ArgumentHelp("Names of subnetworks to evaluate (default: all that pass the filters).", valueName: "name"))
    var subnetworks: [String] = []
    @OptionGroup var filter: StoreFilter
    @Flag(help: "With --store, also evaluate the full model (first row).") var includeFull = false
    @Option(
        help: ArgumentHelp("Mean-activation set stored in --store (default: the only one there).", valueName: "name"))
    var activationSet: String?
    @Option(
        help: ArgumentHelp(
            "soft (the default, the reference's rule: a subnetwork with log α gets the deterministic soft values of its eval scripts, or binary at --threshold; one without is evaluated as stored) or binary (masks as stored). Each result records its rule (mask_rule).",
            valueName: "mode")) var maskMode: String?
    @Option(
        help:
            "Make the deterministic masks binary at this threshold instead of soft (the reference's --threshold-for-deterministic, -t)."
    ) var threshold: Float?
    @Flag(
        help:
            "With a pruned run of the reference as --model (a folder whose weights carry log_alpha tensors): evaluate its unpruned weights instead of its subnetwork."
    ) var full = false
    @Option(
        name: .customLong("step-size"),
        help:
            "Sweep the threshold: every subnetwork at 0, S, 2S, … < 1 (soft values from its log α made binary), one result each, named NAME@t=T (the reference's --step-size)."
    ) var stepSize: Double?
    @Option(
        name: .customLong("force-include"), parsing: .upToNextOption,
        help: ArgumentHelp(
            "Units kept in every subnetwork evaluated (a4.h3, a2.mlp): log α set to +10 before the deterministic rule, as the reference's --force-include; masks without log α get the unit set.",
            valueName: "unit")) var forceInclude: [String] = []
    @Option(
        name: .customLong("force-exclude"), parsing: .upToNextOption,
        help: ArgumentHelp(
            "Units removed from every subnetwork evaluated: log α −10 (the reference's --force-exclude).",
            valueName: "unit")) var forceExclude: [String] = []
    @Option(
        help: ArgumentHelp(
            "Evaluate only shard i of n (i = 1…n) of the subnetworks; defaults from SLURM_ARRAY_TASK_ID/COUNT.",
            valueName: "i/n")) var shard: String?
    @Flag(help: "Write each subnetwork's metrics back into the store's metadata.") var writeBack = false
    @Flag(
        help:
            "Keep every example's predicted class in the document (one character each), from which `hcore report` computes the verdict's intervals and noise span."
    ) var perExample = false
    @OptionGroup var tokenization: TokenizationOptions
    @Option(help: "Sequences per forward pass.") var batchSize: Int = 32
    @Option(
        help:
            "Evaluate a seeded sample of N examples of each set, spread evenly over HANS subcases (else labels); said on stderr."
    ) var maxExamples: Int?
    @Option(help: "Seed of the --max-examples sample.") var sampleSeed: UInt64 = 0
    @Option(
        help:
            "Use only the first N examples of each HANS subcase (the reference's -n, which caps each case of data/datasets/hans-cases)."
    ) var maxExamplesPerCase: Int?
    @Flag(help: "Skip malformed rows (reported on stderr) instead of stopping.") var skipBadRows = false
    @Option(
        help: ArgumentHelp(
            "json (default) or heuristic-core: the reference's flat data/eval table, the full model first (always evaluated), its key spellings.",
            valueName: "format")) var format: String = "json"
    @Option(
        help: ArgumentHelp(
            "With --format heuristic-core: flat (*-sp50.json, the default), acc-vs-sparsity (seed → target → case), sparsity-grid (seed → step → target → case, −1.0 for a missing run; from results of several checkpoints' stores, combined by `hcore eval merge`) or acc-over-ft (step → case, from --checkpoints).",
            valueName: "shape")) var shape = "flat"
    @Option(
        name: .customLong("id-name"),
        help: ArgumentHelp(
            "Name of each in-domain (non-HANS, non-PAWS) --data set in the heuristic-core table, in order (e.g. mnli-matched); default from the file name.",
            valueName: "name")) var idNames: [String] = []
    @Option(help: ArgumentHelp("Also write one CSV row per subnetwork × dataset.", valueName: "file")) var csv: String?
    @Option(
        help: ArgumentHelp(
            "Write per-example predictions as JSON lines {subnetwork, dataset, index, pred, label, logits}.",
            valueName: "file")) var predictions: String?
    @Option(name: .long, help: ArgumentHelp("JSON/CSV key of the text for .jsonl/.csv sets.", valueName: "key"))
    var textKey = "text"
    @Option(name: .long, help: ArgumentHelp("JSON/CSV key of the pair.", valueName: "key")) var pairKey = "text_pair"
    @Option(name: .long, help: ArgumentHelp("JSON/CSV key of the gold label.", valueName: "key")) var labelKey = "label"
    func validate() throws {
        guard !data.isEmpty else { throw UsageError("give at least one --data FILE") }
        try phrasingSettings { try EvalDocument.checkOutput(format: format, shape: shape) }
        if let maskMode, MaskMode(rawValue: maskMode) == nil {
            throw UsageError("--mask-mode must be soft or binary, not '\(maskMode)'")
        }
        let selecting: [(String, Bool)] = [
            ("--store", store != nil), ("--mask", maskOptions.mask != nil), ("--shard", shard != nil),
            ("--write-back", writeBack), ("--include-full", includeFull), ("--subnetworks", !subnetworks.isEmpty),
            ("--threshold", threshold != nil), ("--step-size", stepSize != nil), ("--full", full),
            ("--force-include", !forceInclude.isEmpty), ("--force-exclude", !forceExclude.isEmpty),
            ("--mask-mode", maskMode != nil), ("--activations", maskOptions.activations != nil),
            ("--zero-ablation", maskOptions.zeroAblation), ("--activation-set", activationSet != nil),
            ("--per-example", perExample),
        ]
        if checkpoints != nil {
            try refuse(
                [("--model", model != nil)] + selecting + filter.given, because: "--checkpoints evaluates full models")
        } else if store == nil {
            try refuse(
                [
                    ("--subnetworks", !subnetworks.isEmpty), ("--write-back", writeBack), ("--shard", shard != nil),
                    ("--activation-set", activationSet != nil),
                ] + filter.given,
                because: "it acts on a store's subnetworks: give --store")
        }
        if maskOptions.mask != nil {
            try refuse(
                [
                    ("--store", store != nil), ("--threshold", threshold != nil), ("--step-size", stepSize != nil),
                    ("--mask-mode", maskMode != nil),
                ],
                because: "--mask evaluates the mask file's values as they are")
        }
        try refuse([("--threshold", threshold != nil && stepSize != nil)], because: "--step-size sweeps the threshold")
        try refuse(
            [("--max-examples-per-case", maxExamples != nil && maxExamplesPerCase != nil)],
            because: "--max-examples samples N of each set")
        for (flag, n) in [("--max-examples", maxExamples), ("--max-examples-per-case", maxExamplesPerCase)] {
            if let n, n < 1 { throw UsageError("\(flag) must be at least 1, got \(n)") }
        }
        try refuse(
            [("--threshold", threshold != nil && maskMode == "binary")],
            because: "--mask-mode binary keeps masks as stored")
    }

    func run() throws {
        let started = Date()
        if let checkpoints {
            let first = try checkpointFolders(checkpoints)[0].path
            let positions = try BertConfig.load(path: first + "/config.json").maxPositionEmbeddings
            let document = try checkpointsDocument(
                checkpoints, data: data, keys: keys, skipBadRows: skipBadRows, limit: limit,
                options: try tokenization.options(batchSize: batchSize, positions: positions), warn: warn)
            return emit(bytes: try EvalDocument.output([document], format: format, shape: shape, idNames: idNames))
        }
        guard let modelPath = model else { throw UsageError("give --model DIR (or --checkpoints DIR)") }
        let (model, tok) = (try BertModel.load(folder: modelPath), try BertTokenizer.load(folder: modelPath))
        let opts = try tokenization.options(batchSize: batchSize, positions: model.config.maxPositionEmbeddings)
        let shard = try shardSpec(self.shard)
        var selection = try select(model: model, folder: modelPath)
        if format == "heuristic-core" { selection.includeFullModel() }
        if let shard { selection.keepShard(shard.index, of: shard.count) }
        let prepared = try prepareDatasets(
            data, keys: keys, skipBadRows: skipBadRows, limit: limit, model: model, tokenizer: tok,
            options: opts, warn: warn)
        let examples = prepared.reduce(0) { $0 + $1.encodings.count }
        let progress = ProgressBar(
            "eval \(selection.targets.count) × \(examples)", total: selection.targets.count * examples)
        let results = try evaluateTargets(
            model: model, datasets: prepared, targets: selection.targets, ablation: selection.ablation,
            batchSize: batchSize, keepLogits: predictions != nil, progress: progress.update)
        try writeSideOutputs(
            results, datasets: prepared, labels: model.config.labels, predictions: predictions, csv: csv,
            writeBack: writeBack ? selection.store : nil, warn: warn)
        let document = EvalDocument(
            modelPath: modelPath, fingerprint: model.fingerprint, store: store, ablation: selection.ablationName,
            maskMode: mode.rawValue, maxLength: opts.maxLength,
            shard: shard.map { "\($0.index)/\($0.count)" } ?? "1/1", subnetworksTotal: selection.total,
            prepared: prepared, results: results, seconds: Date().timeIntervalSince(started), perExample: perExample)
        emit(bytes: try EvalDocument.output([document], format: format, shape: shape, idNames: idNames))
    }

    var keys: Dataset.Keys { Dataset.Keys(text: textKey, pair: pairKey, label: labelKey) }
    var limit: ExampleLimit? {
        maxExamples.map { .sample($0, seed: sampleSeed) } ?? maxExamplesPerCase.map { .perSubcase($0) }
    }
    var mode: MaskMode { maskMode.flatMap(MaskMode.init(rawValue:)) ?? .soft }

    /// What the flags ask to evaluate: a store's subnetworks, a mask file, a pruned run given as the model (its
    /// subnetwork, unless --full), or the full model.
    func select(model: BertModel, folder: String) throws -> EvalSelection {
        let forcing = try UnitForcing(
            include: forceInclude, exclude: forceExclude, layers: model.layerCount, heads: model.headCount)
        if let store {
            let names = subnetworks.isEmpty || subnetworks == ["all"] ? nil : subnetworks
            return try EvalSelection.fromStore(
                store, model: model, filter: try filter.filter(names: names), includeFull: includeFull, mode: mode,
                threshold: threshold, ablation: try maskOptions.ablation() ?? .storeSet(activationSet),
                forcing: forcing,
                thresholds: try stepSize.map(thresholdSweep), warn: warn)
        }
        if let mask = maskOptions.mask {
            guard let ablation = try maskOptions.ablation() else {
                throw UsageError("--mask needs --activations FILE (mean ablation, as the paper) or --zero-ablation")
            }
            return try EvalSelection.fromMask(mask, model: model, ablation: ablation, forcing: forcing, warn: warn)
        }
        if !full, let run = try referenceRunSubnetwork(folder: folder, layout: StoreLayout(model)) {
            return try runSelection(run, model: model, forcing: forcing)
        }
        try refuse(
            [
                ("--threshold", threshold != nil), ("--step-size", stepSize != nil), ("--mask-mode", maskMode != nil),
                ("--force-include", !forceInclude.isEmpty), ("--force-exclude", !forceExclude.isEmpty),
                ("--activations", maskOptions.activations != nil), ("--zero-ablation", maskOptions.zeroAblation),
            ],
            because: "the full model has no masks (\(folder) carries no log α)")
        return EvalSelection.fullModel
    }

    /// The subnetwork of a pruned run of the reference given as the model, said on stderr.
    func runSelection(_ run: StoredSubnetwork, model: BertModel, forcing: UnitForcing) throws -> EvalSelection {
        guard stepSize == nil else { throw UsageError("--step-size sweeps the log α of a store: give --store") }
        guard let ablation = try maskOptions.ablation() else {
            throw UsageError(
                "\(run.name) is a pruned run of the reference (its weights carry log_alpha tensors): its subnetwork is evaluated with mean ablation — give --activations FILE (the reference's default: data/activations/mnli.pkl) or --zero-ablation; --full evaluates its unpruned weights"
            )
        }
        let selection = try EvalSelection.fromRun(
            run, model: model, includeFull: includeFull, mode: mode, threshold: threshold, ablation: ablation,
            forcing: forcing, warn: warn)
        let target = selection.targets.last!
        warn(
            "hcore: \(run.name) carries log α (a pruned run of the reference): evaluating its subnetwork, masks \(target.maskRule!), sparsity \(String(format: "%.3f", target.sparsity)); --full evaluates its unpruned weights"
        )
        return selection
    }
}

/// `hcore eval merge`.
struct EvalMerge: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "merge", abstract: "Combine the JSON outputs of sharded `hcore eval` runs into one document.")
    @Argument(
        help:
            "Result files of the shards (or, with --format heuristic-core and a nested --shape, of several models' evaluations: checkpoints, the grid's per-checkpoint stores)."
    ) var files: [String]
    @Option(
        help: ArgumentHelp(
            "json, or heuristic-core: the reference's results file (see `hcore eval --help`).", valueName: "format"))
    var format = "json"
    @Option(help: ArgumentHelp("flat, acc-vs-sparsity, sparsity-grid or acc-over-ft.", valueName: "shape")) var shape =
        "flat"
    @Option(
        name: .customLong("id-name"), help: ArgumentHelp("Names of the in-domain sets, in order.", valueName: "name"))
    var idNames: [String] = []
    func run() throws {
        guard !files.isEmpty else { throw UsageError("give the shards' result files") }
        // Nested shapes put several models' results side by side (checkpoints, a grid); the rest merges shards of one evaluation.
        let docs = try files.map { (path: $0, document: try EvalDocument.read(path: $0)) }
        let nested = format == "heuristic-core" && shape != "flat"
        emit(
            bytes: try EvalDocument.output(
                nested ? docs.map(\.document) : [try EvalDocument.merge(docs)], format: format, shape: shape,
                idNames: idNames))
    }
}
