// Everything around the training loop that `hcore finetune` and the demo share: where training starts (a
// pretrained folder, or a small BERT from scratch with a word-level vocabulary), gold labels as class
// indices, and the run itself ending in a Hugging Face folder.
import Checkpoint
import Eval
import Failures
import Foundation
import Model
import Tokenizer

/// Model sizes for training from scratch (no pretrained checkpoint needed).
public enum ConfigPreset: String, CaseIterable, Sendable {
    case tiny, small
    public func config(vocabSize: Int, labels: [String]) -> BertConfig {
        switch self {
        case .tiny:
            return BertConfig(
                vocabSize: vocabSize, hiddenSize: 32, numHiddenLayers: 2, numAttentionHeads: 2, intermediateSize: 64,
                maxPositionEmbeddings: 128, labels: labels)
        case .small:
            return BertConfig(
                vocabSize: vocabSize, hiddenSize: 64, numHiddenLayers: 4, numAttentionHeads: 4, intermediateSize: 256,
                maxPositionEmbeddings: 128, labels: labels)
        }
    }
}

/// Class indices of each example's gold label (by name, case-insensitive, or as an index); an unknown label
/// names its file and line.
public func labelIndices(_ ds: Dataset, labels: [String]) throws -> [Int] {
    let lower = labels.map { $0.lowercased() }
    return try ds.examples.map { e in
        guard let l = e.label,
            let i = lower.firstIndex(of: l.lowercased())
                ?? Int(l).flatMap({ (0..<labels.count).contains($0) ? $0 : nil })
        else {
            throw DataError.badRow(
                path: ds.path, line: e.line, reason: "label '\(e.label ?? "")' is not one of \(labels)")
        }
        return i
    }
}

/// A model ready to fine-tune, with the tokenizer and vocabulary its folder will be saved with.
public struct FinetuneStart {
    public var model: TrainableBert
    public var tokenizer: BertTokenizer
    public var vocabulary: [String]

    public init(model: TrainableBert, tokenizer: BertTokenizer, vocabulary: [String]) {
        self.model = model
        self.tokenizer = tokenizer
        self.vocabulary = vocabulary
    }

    /// A pretrained folder with a fresh classifier for `labels` (default: the model's own labels if it has
    /// named ones, else `dataLabels`).
    public static func pretrained(folder: String, labels: [String]?, dataLabels: [String], seed: UInt64) throws
        -> FinetuneStart
    {
        let m = try BertModel.load(folder: folder)
        let tokenizer = try BertTokenizer.load(folder: folder)
        let named = m.classifier != nil && !m.config.labels.allSatisfy { $0.hasPrefix("LABEL_") }
        let model = try TrainableBert(model: m, labels: labels ?? (named ? m.config.labels : dataLabels), seed: seed)
        return FinetuneStart(model: model, tokenizer: tokenizer, vocabulary: tokenizer.idToToken)
    }

    /// From scratch: `config` is a preset name (tiny, small) or a config.json path; the vocabulary is
    /// `vocabFile`'s, or every word of `corpus` after BERT's basic tokenization.
    public static func scratch(
        config: String, vocabFile: String?, corpus: [Example], labels: [String], maxLength: Int, seed: UInt64
    ) throws -> FinetuneStart {
        let tokenizer =
            try vocabFile.map { try BertTokenizer.load(vocabTxt: $0) }
            ?? BertTokenizer(vocabulary: try wordVocabulary(corpus))
        let vocabulary = tokenizer.idToToken
        var cfg: BertConfig
        if let preset = ConfigPreset(rawValue: config) {
            cfg = preset.config(vocabSize: vocabulary.count, labels: labels)
        } else {
            cfg = try BertConfig.load(path: config)
            cfg.vocabSize = vocabulary.count
            cfg.labels = labels
        }
        guard maxLength <= cfg.maxPositionEmbeddings else {
            throw SettingError(
                "maxSeqLength", "\(maxLength) exceeds the config's \(cfg.maxPositionEmbeddings) positions")
        }
        return FinetuneStart(
            model: TrainableBert(config: cfg, seed: seed), tokenizer: tokenizer, vocabulary: vocabulary)
    }
}

/// BERT's special tokens, then every word of `examples` (texts and pairs) after basic tokenization, sorted.
public func wordVocabulary(_ examples: [Example]) throws -> [String] {
    try BertTokenizer.wordVocabulary(examples.flatMap { [$0.text] + ($0.pair.map { [$0] } ?? []) })
}

/// Trains `start.model` on `train` (reporting `dev` accuracy through `log` when given), then saves the
/// folder `out`. `progress` receives the step number.
/// `out` must be new or empty unless `replacing` (then the model files in it are removed first), and none of
/// `inputs` (the folder the model was loaded from).
/// `saveSteps` > 0 also writes the model every that many steps into OUT/checkpoint-STEP/ (the Trainer's layout),
/// for the learning-dynamics experiments (each checkpoint evaluated as the full model).
public func finetuneAndSave(
    _ start: FinetuneStart, train: Dataset, dev: Dataset?, config: FinetuneConfig, maxLength: Int, out: String,
    saveSteps: Int = 0, replacing: Bool = false, inputs: [String] = [],
    progress: ((Int, _ total: Int) -> Void)? = nil, log: ((String) -> Void)? = nil
) throws -> [FinetuneRecord] {
    let model = start.model
    let tokenizer = start.tokenizer
    let opts = PredictionOptions(maxLength: maxLength)
    let trainEnc = try encodeAll(train.examples, tokenizer: tokenizer, options: opts)
    let trainLabels = try labelIndices(train, labels: model.config.labels)
    let devPair = try dev.map {
        (
            try encodeAll($0.examples, tokenizer: tokenizer, options: opts),
            try labelIndices($0, labels: model.config.labels)
        )
    }
    let steps = config.totalSteps(examples: train.count)
    var lossSum = 0.0
    var lossCount = 0
    let save = { (step: Int) throws in
        try model.save(
            folder: out + "/checkpoint-\(step)", vocabulary: start.vocabulary, lowercase: tokenizer.lowercase,
            metadata: ["hcore": "finetune", "step": String(step), "seed": String(config.seed)])
    }
    try makeModelFolder(out, replacing: replacing, inputs: inputs)
    let history = try finetune(
        model, train: trainEnc, labels: trainLabels, dev: devPair, config: config, saveEvery: saveSteps,
        checkpoint: save
    ) { r in
        progress?(r.step, steps)
        lossSum += r.loss
        lossCount += 1
        if let acc = r.devAccuracy, let log {
            log(
                String(
                    format: "step %d/%d  epoch %d  loss %.4f  lr %.2e  dev accuracy %.4f", r.step, steps, r.epoch + 1,
                    lossSum / Double(lossCount), r.learningRate, acc))
            lossSum = 0
            lossCount = 0
        }
    }
    try model.save(
        folder: out, vocabulary: start.vocabulary, lowercase: tokenizer.lowercase,
        metadata: ["hcore": "finetune", "steps": String(steps), "seed": String(config.seed)])
    return history
}

extension FinetuneStart {
    /// Exactly one of a pretrained folder and a preset (checked before any file is read).
    public static func checkChoice(model: String?, config: String?) throws {
        guard (model == nil) != (config == nil) else {
            throw SettingError(
                "model", "or config: give one (a checkpoint to fine-tune, or a preset to train from scratch)")
        }
    }

    /// From the command line's choice: a pretrained folder (`model`) or a preset from scratch (`config`), with
    /// label names given or taken from the training file (sorted). Refuses a classifier of fewer than 2 labels.
    public static func choose(
        model: String?, config: String?, vocab: String?, labels: String?, train: Dataset, dev: Dataset?,
        maxLength: Int, seed: UInt64
    ) throws -> FinetuneStart {
        try checkChoice(model: model, config: config)
        let dataLabels = Set(train.examples.compactMap(\.label)).sorted()
        let names = labels.map { $0.split(separator: ",").map(String.init) }
        let start =
            try model.map { try pretrained(folder: $0, labels: names, dataLabels: dataLabels, seed: seed) }
            ?? scratch(
                config: config!, vocabFile: vocab, corpus: train.examples + (dev?.examples ?? []),
                labels: names ?? dataLabels, maxLength: maxLength, seed: seed)
        guard start.model.config.numLabels >= 2 else {
            throw SettingError(
                "labels", "number fewer than two: a classifier needs at least two; the training file has \(dataLabels)")
        }
        return start
    }
}

extension FinetuneRecord {
    /// The summary `hcore finetune` prints.
    public static func summary(_ history: [FinetuneRecord], out: String, parameters: Int, seconds: Double) -> JSONValue
    {
        .object([
            ("out", .string(out)), ("parameters", .int(parameters)), ("steps", .int(history.count)),
            ("final_loss", .float(history.last?.loss ?? .nan)),
            ("dev_accuracy", history.last?.devAccuracy.map { .float($0) } ?? .null),
            ("seconds", .float(seconds)),
        ])
    }
}
