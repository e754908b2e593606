// `hcore eval`: the main job. A model and many subnetworks on ID and OOD sets, one pass.
import ArgumentParser
import Checkpoint
import Eval
import Failures
import Foundation
import Kernels
import Model

/// `hcore eval` is a group: `hcore eval …` runs (the default subcommand), `hcore eval merge FILE…` merges.
struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Evaluate a model and many of its subnetworks on in-domain and out-of-domain sets.",
        discussion: "`hcore eval --model DIR --data FILE …` runs an evaluation (its flags: `hcore eval run --help`); `hcore eval merge FILE…` combines the documents of sharded runs.",
        subcommands: [EvalRun.self, EvalMerge.self], defaultSubcommand: EvalRun.self)
}

struct EvalRun: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Evaluate a model and many of its subnetworks on in-domain and out-of-domain sets (the default of `hcore eval`).",
        discussion: """
        Each dataset is tokenized once; each subnetwork runs through a compiled plan that skips its pruned \
        heads and MLPs. Prints one JSON document (per subnetwork and dataset: accuracy, counts, confusion \
        matrix; for HANS the six heuristic × label cells and 30 subcases, where neutral/contradiction count as \
        non-entailment; F1 for QQP/PAWS). Formats are detected from the header (HANS, GLUE MNLI/QQP, PAWS) or \
        extension (.jsonl, .csv); .zst files are read directly.
          hcore eval --model DIR --data dev_matched.tsv --data data/hans/heuristics_evaluation_set.txt.zst
          hcore eval --model DIR --store subs.hcs --activation-set mnli --data … --write-back
          hcore eval --model DIR --store subs.hcs --shard 2/8 … > part2.json && hcore eval merge part*.json
        --format heuristic-core writes the column-per-metric JSON of the reference repository's data/eval files. \
        `hcore eval merge FILE…` combines the JSON documents of sharded runs.
        """)

    @OptionGroup var modelOptions: ModelOptions
    @Option(name: .long, help: ArgumentHelp("Evaluation set (repeat for several).", valueName: "file")) var data: [String] = []
    @OptionGroup var maskOptions: MaskOptions
    @Option(help: ArgumentHelp("Evaluate the subnetworks of this store.", valueName: "store")) var store: String?
    @Option(parsing: .upToNextOption, help: ArgumentHelp("Names of subnetworks to evaluate (default: all that pass the filters).", valueName: "name"))
    var subnetworks: [String] = []
    @OptionGroup var filter: StoreFilter
    @Flag(help: "With --store, also evaluate the full model (first row).") var includeFull = false
    @Option(help: ArgumentHelp("Mean-activation set stored in --store (default: the only one there).", valueName: "name")) var activationSet: String?
    @Option(help: ArgumentHelp("binary (masks as stored) or soft (the reference's deterministic soft values from log-alphas).", valueName: "mode"))
    var maskMode: String = "binary"
    @Option(help: "With --mask-mode soft: make the soft masks binary at this threshold instead.") var threshold: Float?
    @Option(help: ArgumentHelp("Evaluate only shard i of n (i = 1…n) of the subnetworks; defaults from SLURM_ARRAY_TASK_ID/COUNT.", valueName: "i/n"))
    var shard: String?
    @Flag(help: "Write each subnetwork's metrics back into the store's metadata.") var writeBack = false
    @OptionGroup var tokenization: TokenizationOptions
    @Option(help: "Sequences per forward pass.") var batchSize: Int = 32
    @Option(help: "Use only the first N examples of each set.") var maxExamples: Int?
    @Flag(help: "Skip malformed rows (reported on stderr) instead of stopping.") var skipBadRows = false
    @Option(help: ArgumentHelp("json (default) or heuristic-core.", valueName: "format")) var format: String = "json"
    @Option(help: ArgumentHelp("Also write one CSV row per subnetwork × dataset.", valueName: "file")) var csv: String?
    @Option(help: ArgumentHelp("Write per-example predictions as JSON lines {subnetwork, dataset, index, pred, label, logits}.", valueName: "file"))
    var predictions: String?
    @Option(name: .long, help: ArgumentHelp("JSON/CSV key of the text for .jsonl/.csv sets.", valueName: "key")) var textKey = "text"
    @Option(name: .long, help: ArgumentHelp("JSON/CSV key of the pair.", valueName: "key")) var pairKey = "text_pair"
    @Option(name: .long, help: ArgumentHelp("JSON/CSV key of the gold label.", valueName: "key")) var labelKey = "label"

    func shardSpec() throws -> (Int, Int)? { try parseShard(shard) }

    func run() throws {
        guard !data.isEmpty else { throw CLIError("give at least one --data FILE") }
        guard batchSize >= 1 else { throw CLIError("--batch-size must be at least 1") }
        guard ["json", "heuristic-core"].contains(format) else { throw CLIError("--format must be json or heuristic-core") }
        guard ["binary", "soft"].contains(maskMode) else { throw CLIError("--mask-mode must be binary or soft") }
        let started = Date()
        let (model, tok) = try modelOptions.load()
        let opts = PredictionOptions(maxLength: tokenization.maxLength, batchSize: batchSize, truncation: try tokenization.strategy())

        // What to evaluate, and with which ablation.
        var targets: [EvalTarget] = []
        var ablation: Ablation = .zero
        var storeFile: SubnetworkStore? = nil
        if let store {
            guard maskOptions.mask == nil else { throw CLIError("give --store or --mask, not both") }
            let s = try SubnetworkStore.open(path: store)
            if let note = s.recoveryNote { warn("warning: \(store): \(note)") }
            try checkStore(s, model: model)
            storeFile = s
            var chosen = try filter.apply(s.subnetworks)
            if !subnetworks.isEmpty && subnetworks != ["all"] {
                for n in subnetworks where !s.subnetworks.contains(where: { $0.name == n }) {
                    throw CLIError("\(store) has no subnetwork '\(n)'", code: .badInput)
                }
                chosen = chosen.filter { subnetworks.contains($0.name) }
            }
            if includeFull { targets.append(EvalTarget(name: "full", index: 0, sparsity: 0, seed: .string("original"), masks: nil)) }
            for sub in chosen {
                var masks = MaskValues(units: sub.mask.map(Float.init), layers: model.layerCount, heads: model.headCount)
                if maskMode == "soft" {
                    guard let la = sub.logAlpha else { throw CLIError("'\(sub.name)' has no log-alphas; --mask-mode soft needs them", code: .badInput) }
                    masks = MaskValues.fromLogAlpha(la, layers: model.layerCount, heads: model.headCount, threshold: threshold)
                }
                targets.append(EvalTarget(name: sub.name, index: targets.count, sparsity: 1 - Double(sub.mask.reduce(0) { $0 + Int($1) }) / Double(sub.mask.count),
                                          seed: sub.meta.get("seed") ?? .null, masks: masks))
            }
            if maskOptions.zeroAblation {
                ablation = .zero
            } else if let f = maskOptions.activations {
                let (a, w) = try MeanActivations.load(path: f, model: model)
                if let w { warn("warning: \(w)") }
                ablation = .mean(a)
            } else {
                guard let name = activationSet ?? (s.activationSets.count == 1 ? s.activationSets[0].name : nil) else {
                    throw CLIError(s.activationSets.isEmpty
                        ? "\(store) holds no activation set: pass --activations FILE, or --zero-ablation, or store one with `hcore store add-activations`"
                        : "\(store) holds several activation sets (\(s.activationSets.map(\.name).joined(separator: ", "))); choose one with --activation-set")
                }
                let bytes = try s.activationSet(name)
                let tmp = NSTemporaryDirectory() + "hcore-acts-\(getpid()).safetensors"
                try writeAtomically(bytes, to: tmp)
                defer { unlink(tmp) }
                ablation = .mean(try MeanActivations.load(path: tmp, model: model).0)
            }
        } else {
            let (plan, soft) = try maskOptions.resolve(model: model)
            _ = plan
            if let mask = maskOptions.mask {
                let m = try MaskValues.load(path: mask)
                targets.append(EvalTarget(name: mask, index: 0, sparsity: 1 - Double(m.keptCount) / Double(m.unitCount), seed: .null, masks: m))
                if let soft { ablation = soft.ablation } else if !maskOptions.zeroAblation, let f = maskOptions.activations {
                    ablation = .mean(try MeanActivations.load(path: f, model: model).0)
                }
            } else {
                targets.append(EvalTarget(name: "full", index: 0, sparsity: 0, seed: .string("original"), masks: nil))
            }
        }
        let allCount = targets.count
        if let (i, n) = try shardSpec() { targets = targets.filter { $0.index % n == i - 1 } }

        var prepared: [PreparedDataset] = []
        for path in data {
            let ds = try Dataset.load(path, keys: .init(text: textKey, pair: pairKey, label: labelKey), skipBadRows: skipBadRows, limit: maxExamples)
            for s in ds.skipped { warn("skipped \(s)") }
            prepared.append(try PreparedDataset(dataset: ds, model: model, tokenizer: tok, options: opts))
        }
        let perTarget = prepared.reduce(0) { $0 + $1.encodings.count }
        let progress = Progress("eval \(targets.count) × \(perTarget)", total: targets.count * perTarget)
        let results = try evaluateTargets(model: model, datasets: prepared, targets: targets, ablation: ablation, batchSize: batchSize,
                                          keepLogits: predictions != nil, progress: progress.update)

        if let predictions { try writePredictions(results, prepared, to: predictions, labels: model.config.labels) }
        if let csv { try writeCSV(results, prepared, to: csv) }
        if writeBack, let s = storeFile {
            let updates = results.filter { $0.target.masks != nil && $0.target.name != "full" }.map { r in
                (name: r.target.name, meta: prepared.enumerated().map { (i, d) -> (String, JSONValue) in
                    ("eval/\(d.referenceKey)", .float(r.metrics[i].accuracy))
                })
            }
            try s.updateMeta(updates)
            warn("wrote metrics of \(updates.count) subnetworks back into \(s.path)")
        }
        if format == "heuristic-core" { emit(heuristicCoreTable(results, datasets: prepared).pretty); return }
        let ablationName = targets.allSatisfy { $0.masks == nil } ? "none" : { if case .zero = ablation { return "zero" }; return "mean" }()
        let doc = evalDocument(modelPath: modelOptions.model, model: model, store: store, ablation: ablationName, maskMode: maskMode,
                               maxLength: tokenization.maxLength, shard: try shardSpec().map { "\($0.0)/\($0.1)" } ?? "1/1",
                               subnetworksTotal: allCount, prepared: prepared, results: results, started: started)
        emit(doc.pretty)
    }

    func writePredictions(_ results: [TargetResult], _ datasets: [PreparedDataset], to path: String, labels: [String]) throws {
        var lines: [String] = []
        for r in results {
            for (i, d) in datasets.enumerated() {
                for (k, l) in r.logits[i].enumerated() {
                    lines.append(JSONValue.object([("subnetwork", .string(r.target.name)), ("dataset", .string(d.referenceKey)), ("index", .int(k)),
                                                   ("pred", .string(labels[r.predictions[i][k]])), ("label", d.dataset.examples[k].label.map { .string($0) } ?? .null),
                                                   ("logits", .floats(l))]).compact)
                }
            }
        }
        try writeAtomically(Array((lines.joined(separator: "\n") + "\n").utf8), to: path)
    }

    func writeCSV(_ results: [TargetResult], _ datasets: [PreparedDataset], to path: String) throws {
        var rows = ["subnetwork,sparsity,dataset,accuracy,f1,count"]
        for r in results {
            for (i, d) in datasets.enumerated() {
                let m = r.metrics[i]
                rows.append("\(csvField(r.target.name)),\(r.target.sparsity),\(csvField(d.referenceKey)),\(m.accuracy),\(m.f1.map { "\($0)" } ?? ""),\(m.count)")
                for (key, acc, n) in m.cells + m.subcases { rows.append("\(csvField(r.target.name)),\(r.target.sparsity),\(csvField(d.referenceKey + "/" + key)),\(acc),,\(n)") }
            }
        }
        try writeAtomically(Array((rows.joined(separator: "\n") + "\n").utf8), to: path)
    }

}

/// `hcore eval merge`.
struct EvalMerge: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "merge", abstract: "Combine the JSON outputs of sharded `hcore eval` runs into one document.")
    @Argument(help: "Result files of the shards.") var files: [String]
    func run() throws {
        guard !files.isEmpty else { throw CLIError("give the shards' result files") }
        var base: JSONValue? = nil
        var results: [JSONValue] = []
        for f in files {
            let doc = try JSONValue.parse(String(decoding: try readDataFile(f), as: UTF8.self), path: f)
            guard let r = doc.get("results")?.arrayValue else { throw CLIError("\(f) is not an `hcore eval` JSON document", code: .badInput) }
            if let b = base {
                guard b.get("fingerprint")?.stringValue == doc.get("fingerprint")?.stringValue else {
                    throw CLIError("\(f) evaluated another model than \(files[0])", code: .mismatch)
                }
            } else { base = doc }
            results += r
        }
        results.sort { ($0.get("index")?.intValue ?? 0) < ($1.get("index")?.intValue ?? 0) }
        var seen = Set<Int>()
        for r in results { guard seen.insert(r.get("index")?.intValue ?? -1).inserted else { throw CLIError("subnetwork index \(r.get("index")?.intValue ?? -1) appears in two shards", code: .badInput) } }
        emit(base!.merging([("shard", "merged"), ("results", .array(results))]).pretty)
    }
    }

func csvField(_ s: String) -> String {
    s.contains(",") || s.contains("\"") || s.contains("\n") ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
}

/// The JSON document of `hcore eval` (also written by `hcore demo` and read by `hcore report`).
func evalDocument(modelPath: String, model: BertModel, store: String?, ablation: String, maskMode: String, maxLength: Int, shard: String,
                  subnetworksTotal: Int, prepared: [PreparedDataset], results: [TargetResult], started: Date) -> JSONValue {
    .object([
        ("model", .string(modelPath)), ("fingerprint", .string(model.fingerprint)),
        ("store", store.map { .string($0) } ?? .null),
        ("ablation", .string(ablation)),
        ("mask_mode", .string(maskMode)), ("max_length", .int(maxLength)),
        ("shard", .string(shard)), ("subnetworks_total", .int(subnetworksTotal)),
        ("datasets", .array(prepared.map { d in .object([("name", .string(d.dataset.name)), ("key", .string(d.referenceKey)), ("path", .string(d.dataset.path)),
                                                          ("format", .string(d.dataset.format.rawValue)), ("examples", .int(d.dataset.count)),
                                                          ("skipped_rows", .int(d.dataset.skipped.count)), ("tokenize_s", .float(d.tokenizeSeconds))]) })),
        ("results", .array(results.map { r in .object([
            ("subnetwork", .string(r.target.name)), ("index", .int(r.target.index)), ("seed", r.target.seed),
            ("sparsity", .float(r.target.sparsity)), ("seconds", .float(r.seconds)), ("gflop", .float(r.flops / 1e9)),
            ("metrics", .object(prepared.enumerated().map { ($0.element.referenceKey, r.metrics[$0.offset].json(classes: $0.element.mapping.classes)) })),
        ]) })),
        ("seconds", .float(Date().timeIntervalSince(started))),
    ])
}
