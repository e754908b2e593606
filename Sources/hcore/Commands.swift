import ArgumentParser
import Checkpoint
import Eval
import Failures
import Foundation
import Kernels
import Model
import Tokenizer

struct HCore: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hcore",
        abstract: "Run, prune and dissect finetuned BERT classifiers on CPUs.",
        discussion: """
        hcore loads Hugging Face BERT folders unchanged and implements "The Heuristic Core" (Bhaskar, \
        Friedman, Chen, ACL 2024): subnetworks as head/MLP masks with mean ablation, evaluated exactly and \
        with pruned units really skipped.

        Exit codes: 0 ok, 1 internal error, 2 usage, 3 bad input file, 4 model/mask/activation mismatch, \
        5 write failed, 130 interrupted.
        """,
        subcommands: [EvalCommand.self, Predict.self, Tokenize.self, Info.self, Activations.self, Importance.self, PruneCmd.self, StoreCommand.self, CircuitsCommand.self, Finetune.self, ReportCmd.self, Demo.self])
}

struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Architecture, sizes, parameter count and weight fingerprint of a model folder.")

    @OptionGroup var modelOptions: ModelOptions
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let model = try BertModel.load(folder: modelOptions.model)
        let c = model.config
        let packed = model.layers.reduce(0) { $0 + $1.qkv.byteCount + $1.attentionOutput.byteCount + $1.intermediate.byteCount + $1.output.byteCount }
        let doc: JSONValue = .object([
            ("model", .string(modelOptions.model)), ("weights", .string(model.weightsPath)),
            ("fingerprint", .string(model.fingerprint)),
            ("architecture", .string(model.classifier == nil ? "BertModel" : "BertForSequenceClassification")),
            ("layers", .int(c.numHiddenLayers)), ("heads", .int(c.numAttentionHeads)), ("head_dim", .int(c.headDim)),
            ("hidden", .int(c.hiddenSize)), ("intermediate", .int(c.intermediateSize)),
            ("vocab", .int(c.vocabSize)), ("max_positions", .int(c.maxPositionEmbeddings)),
            ("layer_norm_eps", .float32(c.layerNormEps)), ("labels", .array(c.labels.map { .string($0) })),
            ("parameters", .int(model.parameterCount)), ("prunable_units", .int(c.numHiddenLayers * (c.numAttentionHeads + 1))),
            ("packed_encoder_bytes", .int(packed)), ("simd", .string("\(GemmVec.scalarCount)-wide, micro-kernel \(gemmMR)×\(gemmNR)")),
        ])
        if json { emit(doc.pretty); return }
        emit("""
        model         \(modelOptions.model)
        weights       \(model.weightsPath)
        fingerprint   \(model.fingerprint)
        architecture  \(model.classifier == nil ? "BertModel (no classifier)" : "BertForSequenceClassification")
        encoder       \(c.numHiddenLayers) layers × \(c.numAttentionHeads) heads (head dim \(c.headDim)), hidden \(c.hiddenSize), intermediate \(c.intermediateSize)
        embeddings    vocab \(c.vocabSize), \(c.maxPositionEmbeddings) positions, \(c.typeVocabSize) token types, LayerNorm eps \(c.layerNormEps)
        labels        \(c.labels.enumerated().map { "\($0.offset)=\($0.element)" }.joined(separator: ", "))
        parameters    \(model.parameterCount)
        prunable      \(c.numHiddenLayers * c.numAttentionHeads) heads + \(c.numHiddenLayers) MLPs
        """)
    }
}

struct Tokenize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print input_ids and token_type_ids exactly as the model sees them (compare with Python's tokenizer).",
        discussion: "Examples:\n  hcore tokenize --model DIR \"The doctor saw the lawyer.\" \"The lawyer saw the doctor.\"\n  hcore tokenize --model DIR --jsonl pairs.jsonl")

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var inputs: TextInputOptions
    @OptionGroup var tokenization: TokenizationOptions
    @Flag(help: "Also print the token strings.") var tokens = false
    @Option(help: "Accepted for symmetry with predict; tokenization does not depend on batching (no padding is printed).")
    var batchSize: Int = 32

    func run() throws {
        guard batchSize >= 1 else { throw CLIError("--batch-size must be at least 1") }
        let tok = try BertTokenizer.load(folder: modelOptions.model)
        let strategy = try tokenization.strategy()
        for ex in try inputs.examples() {
            let e = try tok.encode(ex.text, pair: ex.pair, maxLength: tokenization.maxLength, truncation: strategy)
            var fields: [(String, JSONValue)] = [
                ("input_ids", .array(e.inputIds.map { .int(Int($0)) })),
                ("token_type_ids", .array(e.tokenTypeIds.map { .int(Int($0)) })),
            ]
            if tokens { fields.append(("tokens", .array(e.inputIds.map { .string(tok.token($0)) }))) }
            emit(JSONValue.object(fields).compact)
        }
    }
}

/// --mask / --activations / --zero-ablation, shared by predict and eval.
struct MaskOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Subnetwork mask: JSON {\"heads\": [[L rows of H values]], \"mlps\": [L values]}, values in [0, 1].", valueName: "file"))
    var mask: String?

    @Option(name: .long, help: ArgumentHelp("Mean activations (safetensors from `hcore activations`) for mean ablation.", valueName: "file"))
    var activations: String?

    @Flag(name: .long, help: "Replace pruned units by zero instead of their mean activation.")
    var zeroAblation = false

    /// Binary masks → compiled plan; fractional → the general path.
    func resolve(model: BertModel) throws -> (plan: ExecutionPlan?, soft: (masks: MaskValues, ablation: Ablation)?) {
        guard let mask else {
            if activations != nil || zeroAblation { throw CLIError("--activations and --zero-ablation go with --mask") }
            return (nil, nil)
        }
        let masks = try MaskValues.load(path: mask)
        let ablation: Ablation
        if zeroAblation {
            if activations != nil { throw CLIError("--zero-ablation and --activations exclude each other") }
            ablation = .zero
        } else {
            guard let activations else { throw CLIError("--mask needs --activations FILE (mean ablation, as the paper) or --zero-ablation") }
            let (acts, warning) = try MeanActivations.load(path: activations, model: model)
            if let warning { warn("warning: \(warning)") }
            ablation = .mean(acts)
        }
        do { try model.checkMasks(masks, ablation) } catch { throw CLIError("\(mask): \(error)", code: .mismatch) }
        if masks.isBinary { return (try ExecutionPlan.compile(model: model, masks: masks, ablation: ablation), nil) }
        return (nil, (masks, ablation))
    }
}

struct Predict: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Classify a pair (or a JSONL file of pairs): label, probabilities and logits.",
        discussion: """
        Examples:
          hcore predict --model DIR "The doctor saw the lawyer." "The lawyer saw the doctor."
          hcore predict --model DIR --jsonl pairs.jsonl > predictions.jsonl
          hcore predict --model DIR --jsonl pairs.jsonl --mask sub.json --activations acts.safetensors
        With --jsonl, one JSON line per input, in input order: {"label", "probs", "logits"}.
        """)

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var inputs: TextInputOptions
    @OptionGroup var tokenization: TokenizationOptions
    @OptionGroup var maskOptions: MaskOptions
    @Option(help: "Sequences per forward pass (batches are length-sorted and packed, no padding is computed).")
    var batchSize: Int = 32

    func run() throws {
        guard batchSize >= 1 else { throw CLIError("--batch-size must be at least 1") }
        let (model, tok) = try modelOptions.load()
        let (plan, soft) = try maskOptions.resolve(model: model)
        let examples = try inputs.examples()
        let opts = PredictionOptions(maxLength: tokenization.maxLength, batchSize: batchSize, truncation: try tokenization.strategy())
        let encodings = try encodeAll(examples, tokenizer: tok, options: opts)
        let progress = Progress("predict", total: encodings.count)
        let logits = try predictLogits(model: model, encodings: encodings, batchSize: batchSize, plan: plan, soft: soft,
                                       progress: examples.count > 1000 ? progress.update : nil)
        let labels = model.config.labels
        for l in logits {
            let p = softmax(l)
            if inputs.jsonl == nil {
                emit("\(labels[argmax(l)])")
                let width = labels.map(\.count).max() ?? 0
                for (i, name) in labels.enumerated() {
                    emit("  " + name.padding(toLength: width, withPad: " ", startingAt: 0) + String(format: "  p=%.4f  logit=%+.5f", p[i], l[i]))
                }
            } else {
                emit(JSONValue.object([("label", .string(labels[argmax(l)])), ("probs", .floats(p)), ("logits", .floats(l))]).compact)
            }
        }
    }
}

struct Activations: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Mean activations for mean ablation: per-head context and per-MLP output, averaged over all tokens.",
        discussion: """
        Averages every non-padding token of every example ([CLS]/[SEP] included), in float64, over the \
        unpruned model — Heuristic-Core's procedure. Output: safetensors with avg_head [L, H, head_dim] and \
        avg_mlp [L, hidden] (F32) and the model fingerprint in its metadata.
          hcore activations --model DIR --data data/hans/heuristics_evaluation_set.txt.zst --max-examples 2000 --out acts.safetensors
        """)

    @OptionGroup var modelOptions: ModelOptions
    @Option(help: ArgumentHelp("Dataset (HANS/GLUE TSV, PAWS, JSONL, CSV; .zst accepted).", valueName: "file")) var data: String
    @Option(help: "Use only the first N examples.") var maxExamples: Int?
    @Option(help: ArgumentHelp("Output safetensors file.", valueName: "file")) var out: String
    @OptionGroup var tokenization: TokenizationOptions
    @Option(help: "Sequences per forward pass.") var batchSize: Int = 32

    func run() throws {
        let (model, tok) = try modelOptions.load()
        let ds = try Dataset.load(data, limit: maxExamples)
        guard ds.count > 0 else { throw CLIError("\(data) has no examples", code: .badInput) }
        let opts = PredictionOptions(maxLength: tokenization.maxLength, batchSize: batchSize, truncation: try tokenization.strategy())
        let acc = ActivationAccumulator(model: model)
        let progress = Progress("activations", total: ds.count)
        var done = 0
        // Streaming: tokenize and run one batch at a time.
        for start in stride(from: 0, to: ds.count, by: batchSize) {
            let chunk = Array(ds.examples[start..<min(ds.count, start + batchSize)])
            let batch = TokenBatch(try encodeAll(chunk, tokenizer: tok, options: opts))
            let x = try model.encode(batch, observer: acc)
            x.deallocate()
            done += chunk.count
            progress.update(done)
        }
        try acc.result(fingerprint: model.fingerprint).write(path: out, model: model,
                                                              extraMetadata: ["dataset": ds.path, "examples": String(ds.count), "tokens": String(acc.tokens)])
        warn("wrote \(out): mean activations over \(ds.count) examples, \(acc.tokens) tokens")
    }
}


struct Importance: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Gradient of the loss with respect to every head and MLP mask value, averaged over batches.",
        discussion: """
        The head-importance scores of Michel et al. (2019) and the signal L0 pruning follows, from one backward \
        pass per batch: by default KL(full model ‖ subnetwork) as in Heuristic-Core's pruning objective (zero at \
        the full model, so pass --mask to score a subnetwork), or cross-entropy with the gold labels \
        (--objective ce), which scores the full model too.
          hcore importance --model DIR --data dev_matched.tsv --objective ce --json
          hcore importance --model DIR --data hans.txt.zst --mask sub.json --activations acts.safetensors --json
        Output: {"heads": [[L×H]], "mlps": [L], "loss": …, "batches": …, "examples": …}.
        """)

    @OptionGroup var modelOptions: ModelOptions
    @Option(help: ArgumentHelp("Dataset (labels needed for --objective ce).", valueName: "file")) var data: String
    @OptionGroup var maskOptions: MaskOptions
    @Option(help: ArgumentHelp("kl (to the full model, the default) or ce (with gold labels).", valueName: "objective")) var objective = "kl"
    @Option(help: "Sequences per batch.") var batchSize: Int = 32
    @Option(help: "Use only the first N examples.") var maxExamples: Int?
    @OptionGroup var tokenization: TokenizationOptions
    @Flag(help: "Print JSON (the default prints a table).") var json = false

    func run() throws {
        guard ["kl", "ce"].contains(objective) else { throw CLIError("--objective must be kl or ce") }
        guard batchSize >= 1 else { throw CLIError("--batch-size must be at least 1") }
        let (model, tok) = try modelOptions.load()
        let ds = try Dataset.load(data, limit: maxExamples)
        guard ds.count > 0 else { throw CLIError("\(data) has no examples", code: .badInput) }
        var masks = MaskValues.ones(layers: model.layerCount, heads: model.headCount)
        var ablation: Ablation = .zero
        if let m = maskOptions.mask {
            masks = try MaskValues.load(path: m)
            if !maskOptions.zeroAblation {
                guard let a = maskOptions.activations else { throw CLIError("--mask needs --activations FILE or --zero-ablation") }
                ablation = .mean(try MeanActivations.load(path: a, model: model).0)
            }
            do { try model.checkMasks(masks, ablation) } catch { throw CLIError("\(m): \(error)", code: .mismatch) }
        }
        var labels: [Int] = []
        if objective == "ce" {
            let mapping = try LabelMapping.make(for: ds, modelLabels: model.config.labels)
            labels = try ds.examples.map { ex in
                guard let g = ex.label.flatMap({ mapping.gold[$0] }), let i = mapping.predicted.firstIndex(of: g) else {
                    throw CLIError("\(data):\(ex.line): no usable gold label for cross-entropy", code: .badInput)
                }
                return i
            }
        }
        let opts = PredictionOptions(maxLength: tokenization.maxLength, batchSize: batchSize, truncation: try tokenization.strategy())
        let encodings = try encodeAll(ds.examples, tokenizer: tok, options: opts)
        var heads = [[Double]](repeating: [Double](repeating: 0, count: model.headCount), count: model.layerCount)
        var mlps = [Double](repeating: 0, count: model.layerCount), loss = 0.0
        let progress = Progress("importance", total: encodings.count)
        var batches = 0, done = 0
        for start in stride(from: 0, to: encodings.count, by: batchSize) {
            let idx = Array(start..<min(encodings.count, start + batchSize))
            let g = try model.maskGradients(TokenBatch(idx.map { encodings[$0] }), masks: masks, ablation: ablation,
                                            objective: objective == "kl" ? .kl : .crossEntropy(labels: idx.map { labels[$0] }))
            for l in heads.indices { for h in heads[l].indices { heads[l][h] += g.heads[l][h] } ; mlps[l] += g.mlps[l] }
            loss += g.loss
            batches += 1
            done += idx.count
            progress.update(done)
        }
        let n = Double(batches)
        heads = heads.map { $0.map { $0 / n } }
        mlps = mlps.map { $0 / n }
        if json {
            emit(JSONValue.object([("heads", .array(heads.map { .array($0.map { .float($0) }) })), ("mlps", .array(mlps.map { .float($0) })),
                                   ("loss", .float(loss / n)), ("objective", .string(objective)), ("batches", .int(batches)), ("examples", .int(ds.count))]).pretty)
            return
        }
        emit("mean d\(objective == "kl" ? "KL" : "CE")/dmask over \(batches) batches (loss \(String(format: "%.5g", loss / n))); negative = the unit helps")
        for l in 0..<model.layerCount {
            emit("layer \(l): " + heads[l].map { String(format: "%+.2e", $0) }.joined(separator: " ") + "   mlp " + String(format: "%+.2e", mlps[l]))
        }
    }
}
