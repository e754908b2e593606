// `hcore finetune`: full fine-tuning of a BERT classifier into a Hugging Face folder.
import ArgumentParser
import Checkpoint
import Eval
import Failures
import Foundation
import Kernels
import Model
import Tokenizer
import Train

/// Model sizes for training from scratch (no pretrained checkpoint needed).
enum ConfigPreset: String, CaseIterable {
    case tiny, small
    func config(vocabSize: Int, labels: [String]) -> BertConfig {
        switch self {
        case .tiny: return BertConfig(vocabSize: vocabSize, hiddenSize: 32, numHiddenLayers: 2, numAttentionHeads: 2, intermediateSize: 64,
                                      maxPositionEmbeddings: 128, labels: labels)
        case .small: return BertConfig(vocabSize: vocabSize, hiddenSize: 64, numHiddenLayers: 4, numAttentionHeads: 4, intermediateSize: 256,
                                       maxPositionEmbeddings: 128, labels: labels)
        }
    }
}

/// Class indices of each example's gold label; an unknown label names its file and line.
func labelIndices(_ ds: Dataset, labels: [String]) throws -> [Int] {
    let lower = labels.map { $0.lowercased() }
    return try ds.examples.map { e in
        guard let l = e.label, let i = lower.firstIndex(of: l.lowercased()) ?? Int(l).flatMap({ (0..<labels.count).contains($0) ? $0 : nil }) else {
            throw DataError.badRow(path: ds.path, line: e.line, reason: "label '\(e.label ?? "")' is not one of \(labels)")
        }
        return i
    }
}

/// Trains `model` on `train` (and reports `dev` accuracy), printing a line per `logEvery` steps, then saves.
func finetuneAndSave(_ model: TrainableBert, tokenizer: BertTokenizer, vocabulary: [String], train: Dataset, dev: Dataset?,
                     config: FinetuneConfig, maxLength: Int, out: String, quiet: Bool = false) throws -> [FinetuneRecord] {
    let opts = PredictionOptions(maxLength: maxLength)
    let trainEnc = try encodeAll(train.examples, tokenizer: tokenizer, options: opts)
    let trainLabels = try labelIndices(train, labels: model.config.labels)
    let devPair = try dev.map { (try encodeAll($0.examples, tokenizer: tokenizer, options: opts), try labelIndices($0, labels: model.config.labels)) }
    let steps = (train.count + config.batchSize - 1) / config.batchSize * config.epochs
    let progress = Progress("finetune", total: steps)
    var lossSum = 0.0, lossCount = 0
    let history = try finetune(model, train: trainEnc, labels: trainLabels, dev: devPair, config: config) { r in
        progress.update(r.step)
        lossSum += r.loss; lossCount += 1
        if let acc = r.devAccuracy, !quiet {
            warn(String(format: "step %d/%d  epoch %d  loss %.4f  lr %.2e  dev accuracy %.4f", r.step, steps, r.epoch + 1, lossSum / Double(lossCount), r.learningRate, acc))
            lossSum = 0; lossCount = 0
        }
    }
    try model.save(folder: out, vocabulary: vocabulary, lowercase: tokenizer.lowercase,
                   metadata: ["hcore": "finetune", "steps": String(steps), "seed": String(config.seed)])
    return history
}

struct Finetune: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Fine-tune a BERT classifier (all weights) and write a Hugging Face folder.",
        discussion: """
        Starts from a pretrained folder (--model) or from scratch (--config tiny|small|config.json, with a \
        word-level vocabulary built from the training and dev files unless --vocab is given). Cross-entropy, \
        AdamW with weight decay on every weight except biases and LayerNorm weights, linear warm-up over
        --warmup-ratio of the steps then linear decay, BERT's hidden dropout (attention-probability dropout is \
        not applied). The output folder (config.json, model.safetensors, vocab.txt, tokenizer_config.json) \
        loads in transformers and in every hcore command.
          hcore finetune --config small --train train.jsonl --dev dev.jsonl --out runs/small --num-train-epochs 4
          hcore finetune --model Tests/Fixtures/models/minilm-nli --train train.jsonl --out runs/minilm --learning-rate 3e-5
        """)

    @Option(help: ArgumentHelp("Pretrained folder to start from.", valueName: "dir")) var model: String?
    @Option(help: ArgumentHelp("From scratch: tiny, small, or a config.json path.", valueName: "preset")) var config: String?
    @Option(help: ArgumentHelp("vocab.txt for --config (default: the words of the training and dev files).", valueName: "file")) var vocab: String?
    @Option(help: ArgumentHelp("Training set (JSONL, CSV, GLUE TSV, HANS; .zst).", valueName: "file")) var train: String
    @Option(help: ArgumentHelp("Dev set, evaluated every --eval-steps and at the end.", valueName: "file")) var dev: String?
    @Option(help: ArgumentHelp("Output folder.", valueName: "dir")) var out: String
    @Option(help: ArgumentHelp("Label names in class order (default: the model's, or the training file's labels sorted).", valueName: "a,b,…")) var labels: String?
    @Option(name: .customLong("num-train-epochs")) var epochs: Int = 3
    @Option(name: .customLong("per-device-train-batch-size")) var batchSize: Int = 32
    @Option(name: .customLong("learning-rate")) var learningRate: Double = 5e-5
    @Option(name: .customLong("weight-decay")) var weightDecay: Double = 0.01
    @Option(name: .customLong("warmup-ratio")) var warmupRatio: Double = 0.1
    @Option(help: "Hidden dropout probability (default: the config's hidden_dropout_prob).") var dropout: Float?
    @Option(name: .customLong("eval-steps"), help: "Evaluate on --dev every N steps (0: at the end only).") var evalSteps: Int = 0
    @Option var seed: UInt64 = 42
    @Option(name: .customLong("max-seq-length")) var maxLength: Int = 128
    @Option(name: .customLong("max-train-samples")) var maxTrainSamples: Int?

    func run() throws {
        guard (model == nil) != (config == nil) else { throw CLIError("give --model DIR (fine-tune a checkpoint) or --config PRESET (from scratch), not both") }
        guard epochs >= 1, batchSize >= 1, learningRate > 0, (0..<1).contains(warmupRatio) else {
            throw CLIError("--num-train-epochs and --per-device-train-batch-size must be ≥ 1, --learning-rate > 0, --warmup-ratio in [0, 1)")
        }
        if let dropout, !(0..<1).contains(dropout) { throw CLIError("--dropout must lie in [0, 1)") }
        let trainSet = try Dataset.load(train, limit: maxTrainSamples)
        guard trainSet.count > 0 else { throw CLIError("\(train) has no examples", code: .badInput) }
        let devSet = try dev.map { try Dataset.load($0) }
        let dataLabels = Set(trainSet.examples.compactMap(\.label)).sorted()
        var c = FinetuneConfig()
        c.epochs = epochs; c.batchSize = batchSize; c.learningRate = learningRate; c.weightDecay = weightDecay
        c.warmupRatio = warmupRatio; c.dropout = dropout; c.seed = seed; c.evalEvery = evalSteps

        let trainable: TrainableBert, tokenizer: BertTokenizer, vocabulary: [String]
        if let model {
            let m = try BertModel.load(folder: model)
            tokenizer = try BertTokenizer.load(folder: model)
            vocabulary = tokenizer.idToToken
            let hasLabels = m.classifier != nil && !m.config.labels.allSatisfy { $0.hasPrefix("LABEL_") }
            let names = labels.map { $0.split(separator: ",").map(String.init) } ?? (hasLabels ? m.config.labels : dataLabels)
            trainable = try TrainableBert(model: m, labels: names, seed: seed)
        } else {
            let names = labels.map { $0.split(separator: ",").map(String.init) } ?? dataLabels
            if let vocab {
                tokenizer = try BertTokenizer.load(vocabTxt: vocab)
                vocabulary = tokenizer.idToToken
            } else {
                let basic = try BertTokenizer(vocabulary: ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
                var words = Set<String>()
                for e in trainSet.examples + (devSet?.examples ?? []) {
                    for w in basic.basicTokens(e.text) + basic.basicTokens(e.pair ?? "") { words.insert(w) }
                }
                vocabulary = basic.idToToken + words.subtracting(basic.idToToken).sorted()
                tokenizer = try BertTokenizer(vocabulary: vocabulary)
            }
            let cfg: BertConfig
            if let preset = ConfigPreset(rawValue: config!) {
                cfg = preset.config(vocabSize: vocabulary.count, labels: names)
            } else {
                var loaded = try BertConfig.load(path: config!)
                loaded.vocabSize = vocabulary.count
                loaded.labels = names
                cfg = loaded
            }
            guard maxLength <= cfg.maxPositionEmbeddings else { throw CLIError("--max-seq-length \(maxLength) exceeds the config's \(cfg.maxPositionEmbeddings) positions") }
            trainable = TrainableBert(config: cfg, seed: seed)
        }
        guard trainable.config.numLabels >= 2 else { throw CLIError("a classifier needs at least two labels; the training file has \(dataLabels)") }
        warn("fine-tuning \(trainable.parameterCount) parameters on \(trainSet.count) examples, labels \(trainable.config.labels)")
        let started = Date()
        let history = try finetuneAndSave(trainable, tokenizer: tokenizer, vocabulary: vocabulary, train: trainSet, dev: devSet,
                                          config: c, maxLength: maxLength, out: out)
        emit(JSONValue.object([
            ("out", .string(out)), ("parameters", .int(trainable.parameterCount)), ("steps", .int(history.count)),
            ("final_loss", .float(history.last?.loss ?? .nan)), ("dev_accuracy", history.last?.devAccuracy.map { .float($0) } ?? .null),
            ("seconds", .float(Date().timeIntervalSince(started))),
        ]).pretty)
    }
}
