// The periodic evaluation of a pruning run (`PruneEvaluation`): the full (or reference) model's distribution
// on the evaluation set is computed once; each evaluation runs the current deterministic masks over it.
import Eval
import Failures
import Foundation
import Kernels
import Model
import Tokenizer

struct PruneEvaluator {
    let evaluation: PruneEvaluation
    let model: BertModel, activations: MeanActivations, pool: ThreadPool
    /// The reference model's distribution per example, [example][class].
    let full: [[Double]]
    var every: Int { evaluation.every }

    init(_ e: PruneEvaluation, model: BertModel, reference: BertModel, activations: MeanActivations, pool: ThreadPool)
        throws
    {
        guard e.every > 0 else { throw ModelError.badInput("the evaluation interval must be positive") }
        guard !e.encodings.isEmpty else { throw ModelError.badInput("the evaluation set has no examples") }
        let C = model.config.numLabels
        if let labels = e.labels {
            guard labels.count == e.encodings.count, labels.allSatisfy({ $0 >= 0 }) else {
                throw ModelError.badInput("the evaluation set needs one label per example")
            }
        }
        if let p = e.predictedClass, p.count != C {
            throw ModelError.badInput("the class mapping needs \(C) entries, has \(p.count)")
        }
        (evaluation, self.model, self.activations, self.pool) = (e, model, activations, pool)
        full = try predictLogits(model: reference, encodings: e.encodings, batchSize: 32, pool: pool).map(softmaxDouble)
    }

    func run(logAlpha: [Double]) throws -> PruneEvaluationResult {
        let L = model.layerCount
        let H = model.headCount
        let C = model.config.numLabels
        let masks = MaskValues.fromLogAlpha(logAlpha.map(Float.init), layers: L, heads: H, threshold: nil)
        let logits = try predictLogits(
            model: model, encodings: evaluation.encodings, batchSize: 32, soft: (masks, .mean(activations)), pool: pool)
        // KL(full ‖ subnetwork), batch-mean over every example: the pruning objective's loss (Model/Blocks/Losses.swift).
        let kl = distributionLoss(logits: logits.flatMap { $0 }, targets: full.flatMap { $0 }, classes: C, kl: true)
            .loss
        let accuracy = evaluation.labels.map { labels in
            Double(
                zip(logits, labels).filter { row, gold in
                    (evaluation.predictedClass?[argmax(row)] ?? argmax(row)) == gold
                }.count) / Double(labels.count)
        }
        return PruneEvaluationResult(
            kl: kl, accuracy: accuracy,
            sparsity: Double(masks.units.filter { $0 == 0 }.count) / Double(masks.units.count))
    }
}

extension PruneEvaluation {
    /// The first `limit` examples of a dataset file, labels scored as eval scores them (HANS's collapse included).
    public init(
        path: String, limit: Int, every: Int, model: BertModel, tokenizer: BertTokenizer, options: PredictionOptions
    ) throws {
        guard every > 0 else { throw SettingError("evalSteps", "must be positive") }
        guard limit > 0 else { throw SettingError("maxEvalSamples", "must be positive") }
        let dataset = try Dataset.loadNonEmpty(path, limit: limit)
        let encodings = try encodeAll(dataset.examples, tokenizer: tokenizer, options: options)
        let labelled = dataset.examples.allSatisfy { $0.label != nil }
        let indices =
            try labelled
            ? LabelMapping.make(for: dataset, modelLabels: model.config.labels).indices(for: dataset.examples) : nil
        self.init(encodings: encodings, labels: indices?.gold, predictedClass: indices?.predicted, every: every)
    }
}
