// Commands on one model: info, tokenize, predict, activations, importance.
import ArgumentParser
import Checkpoint
import Eval
import Failures
import Foundation
import Model
import Prune
import Tokenizer

struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Architecture, sizes, parameter count and weight fingerprint of a model folder.")
    @OptionGroup var modelOptions: ModelOptions
    @Flag(help: "Print JSON.") var json = false
    func run() throws {
        let model = try BertModel.load(folder: modelOptions.model)
        emit(json ? model.infoJSON.pretty : model.infoText)
    }
}

struct Tokenize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Print input_ids and token_type_ids exactly as the model sees them (compare with Python's tokenizer).",
        discussion: """
            Examples:
              hcore tokenize --model DIR "The doctor saw the lawyer." \\
                  "The lawyer saw the doctor."
              hcore tokenize --model DIR --jsonl pairs.jsonl
            """)
    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var inputs: TextInputOptions
    @OptionGroup var tokenization: TokenizationOptions
    @Flag(help: "Also print the token strings.") var tokens = false
    @Option(
        help: "Accepted for symmetry with predict; tokenization does not depend on batching (no padding is printed).")
    var batchSize: Int = 32
    func run() throws {
        let config = try BertConfig.load(path: modelOptions.model + "/config.json")
        let opts = try tokenization.options(batchSize: batchSize, positions: config.maxPositionEmbeddings)
        let tok = try BertTokenizer.load(folder: modelOptions.model)
        for ex in try inputs.examples() {
            emit(
                tokenizationLine(
                    try tok.encode(ex.text, pair: ex.pair, maxLength: opts.maxLength, truncation: opts.truncation),
                    tokens: tokens ? tok : nil))
        }
    }
}

struct Predict: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Classify a pair (or a JSONL file of pairs): label, probabilities and logits.",
        discussion: """
            Examples:
              hcore predict --model DIR "The doctor saw the lawyer." \\
                  "The lawyer saw the doctor."
              hcore predict --model DIR --jsonl pairs.jsonl > predictions.jsonl
              hcore predict --model DIR --jsonl pairs.jsonl --mask sub.json \\
                  --activations acts.safetensors
            With --jsonl, one JSON line per input, in input order: {"label", "probs", "logits"}.
            """)
    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var inputs: TextInputOptions
    @OptionGroup var tokenization: TokenizationOptions
    @OptionGroup var maskOptions: MaskOptions
    @OptionGroup var runOptions: RunOptions
    @Option(help: "Sequences per forward pass (batches are length-sorted and packed, no padding is computed).")
    var batchSize: Int = 32
    func run() throws {
        let (model, tok) = try modelOptions.load()
        let opts = try tokenization.options(batchSize: batchSize, positions: model.config.maxPositionEmbeddings)
        let chosen = try runOptions.subnetwork(folder: modelOptions.model, model: model, mask: maskOptions)
        let (plan, soft) = try chosen.map { try compiled($0, model: model) } ?? maskOptions.compile(model: model)
        let encodings = try encodeAll(try inputs.examples(), tokenizer: tok, options: opts)
        let progress = ProgressBar("predict", total: encodings.count)
        let logits = try predictLogits(
            model: model, encodings: encodings, batchSize: batchSize, plan: plan, soft: soft,
            progress: encodings.count > 1000 ? progress.update : nil)
        predictionLines(logits, labels: model.config.labels, json: inputs.jsonl != nil).forEach(emit)
    }
}

struct Activations: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Mean activations for mean ablation: per-head context and per-MLP output, averaged over all tokens.",
        discussion: """
            Averages every non-padding token of every example ([CLS]/[SEP] included), in float64, over the unpruned model — Heuristic-Core's procedure. Output: safetensors with avg_head [L, H, head_dim] and avg_mlp [L, hidden] (F32) and the model fingerprint in its metadata.
              hcore activations --model DIR --data train.tsv --out acts.safetensors
            """)
    @OptionGroup var modelOptions: ModelOptions
    @Option(help: ArgumentHelp("Dataset (HANS/GLUE TSV, PAWS, JSONL, CSV; .zst accepted).", valueName: "file"))
    var data: String
    @Option(help: "Use a seeded sample of N examples, spread evenly over HANS subcases (else labels).")
    var maxExamples: Int?
    @Option(help: "Seed of the --max-examples sample.") var sampleSeed: UInt64 = 0
    @Option(help: ArgumentHelp("Output safetensors file.", valueName: "file")) var out: String
    @OptionGroup var tokenization: TokenizationOptions
    @Option(help: "Sequences per forward pass.") var batchSize: Int = 32
    func run() throws {
        let (model, tok) = try modelOptions.load()
        let opts = try tokenization.options(batchSize: batchSize, positions: model.config.maxPositionEmbeddings)
        let all = try Dataset.loadNonEmpty(data, limit: nil)
        let ds = maxExamples.map { all.sampled($0, seed: sampleSeed, warn: warn) } ?? all
        let progress = ProgressBar("activations", total: ds.count)
        let (acts, tokens) = try meanActivations(
            model: model, examples: ds.examples, tokenizer: tok, options: opts, batchSize: batchSize,
            progress: progress.update)
        try acts.write(
            path: out, model: model,
            extraMetadata: ["dataset": ds.path, "examples": String(ds.count), "tokens": String(tokens)])
        warn("wrote \(out): mean activations over \(ds.count) examples, \(tokens) tokens")
    }
}

struct Importance: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Gradient of the loss with respect to every head and MLP mask value, averaged over batches.",
        discussion: """
            The head-importance scores of Michel et al. (2019) and the signal L0 pruning follows, from one backward pass per batch: by default KL(full model ‖ subnetwork) as in Heuristic-Core's pruning objective (zero at the full model, so pass --mask to score a subnetwork), or cross-entropy with the gold labels (--objective ce), which scores the full model too.
              hcore importance --model DIR --data dev_matched.tsv --objective ce --json
              hcore importance --model DIR --data hans.txt.zst --mask sub.json \\
                  --activations acts.safetensors --json
            Output: {"heads": [[L×H]], "mlps": [L], "loss": …, "batches": …, "examples": …}.
            """)
    @OptionGroup var modelOptions: ModelOptions
    @Option(help: ArgumentHelp("Dataset (labels needed for --objective ce).", valueName: "file")) var data: String
    @OptionGroup var maskOptions: MaskOptions
    @Option(help: ArgumentHelp("kl (to the full model, the default) or ce (with gold labels).", valueName: "objective"))
    var objective = "kl"
    @Option(help: "Sequences per batch.") var batchSize: Int = 32
    @Option(help: "Use a seeded sample of N examples, spread evenly over HANS subcases (else labels).")
    var maxExamples: Int?
    @Option(help: "Seed of the --max-examples sample.") var sampleSeed: UInt64 = 0
    @OptionGroup var tokenization: TokenizationOptions
    @Flag(help: "The signed mean of ∂L/∂ξ instead of Michel et al.'s per-layer-normalised mean |∂L/∂ξ|.") var signed =
        false
    @Flag(help: "Print JSON (the default prints a table).") var json = false
    func run() throws {
        guard ["kl", "ce"].contains(objective) else { throw UsageError("--objective must be kl or ce") }
        let (model, tok) = try modelOptions.load()
        let opts = try tokenization.options(batchSize: batchSize, positions: model.config.maxPositionEmbeddings)
        let all = try Dataset.loadNonEmpty(data, limit: nil)
        let ds = maxExamples.map { all.sampled($0, seed: sampleSeed, warn: warn) } ?? all
        let (masks, ablation) =
            try maskOptions.resolve(model: model) ?? (
                .ones(layers: model.layerCount, heads: model.headCount), .zero
            )
        let labels =
            objective == "ce" ? try LabelMapping.make(for: ds, modelLabels: model.config.labels).classIndices(ds) : nil
        let progress = ProgressBar("importance", total: ds.count)
        let s = try maskImportance(
            model: model, encodings: try encodeAll(ds.examples, tokenizer: tok, options: opts), labels: labels,
            masks: masks, ablation: ablation, batchSize: batchSize, signed: signed, progress: progress.update)
        if json {
            emit(s.json(objective: objective).pretty)
        } else {
            s.table(objective: objective, signed: signed).forEach(emit)
        }
    }
}
