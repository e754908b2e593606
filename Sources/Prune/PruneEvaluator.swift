// The periodic evaluation of a pruning run (`PruneEvaluation`): the full (or reference) model's distribution
// on the evaluation set is computed once; each evaluation runs the current deterministic masks over it.
import Eval
import Foundation
import Kernels
import Model
import Tokenizer

struct PruneEvaluator {
    let evaluation: PruneEvaluation
    let model: BertModel, activations: MeanActivations, pool: ThreadPool
    let batches: [[Int]]
    let full: [[Double]]
    var every: Int { evaluation.every }

    init(_ e: PruneEvaluation, model: BertModel, reference: BertModel, activations: MeanActivations, pool: ThreadPool) throws {
        guard e.every > 0 else { throw ModelError.badInput("the evaluation interval must be positive") }
        guard !e.encodings.isEmpty else { throw ModelError.badInput("the evaluation set has no examples") }
        let C = model.config.numLabels
        if let labels = e.labels {
            guard labels.count == e.encodings.count, labels.allSatisfy({ $0 >= 0 }) else {
                throw ModelError.badInput("the evaluation set needs one label per example")
            }
        }
        if let p = e.predictedClass, p.count != C { throw ModelError.badInput("the class mapping needs \(C) entries, has \(p.count)") }
        (evaluation, self.model, self.activations, self.pool) = (e, model, activations, pool)
        batches = stride(from: 0, to: e.encodings.count, by: 32).map { Array($0..<min(e.encodings.count, $0 + 32)) }
        var full: [[Double]] = []
        for b in batches { full += try reference.fullModelProbabilities(TokenBatch(b.map { e.encodings[$0] }), pool: pool) }
        self.full = full
    }

    func run(logAlpha: [Double]) throws -> PruneEvaluationResult {
        let L = model.layerCount, H = model.headCount, C = model.config.numLabels
        let masks = MaskValues.fromLogAlpha(logAlpha.map(Float.init), layers: L, heads: H, threshold: nil)
        var kl = 0.0, correct = 0
        for b in batches {
            let logits = try model.forward(TokenBatch(b.map { evaluation.encodings[$0] }), soft: (masks, .mean(activations)), pool: pool)
            for (r, i) in b.enumerated() {
                let row = Array(logits[(r * C)..<((r + 1) * C)])
                let q = softmaxDouble(row)
                for k in 0..<C where full[i][k] > 0 { kl += full[i][k] * (log(full[i][k]) - log(max(q[k], 1e-300))) }
                if let labels = evaluation.labels, let top = row.indices.max(by: { row[$0] < row[$1] }),
                   (evaluation.predictedClass?[top] ?? top) == labels[i] { correct += 1 }
            }
        }
        let n = Double(evaluation.encodings.count)
        return PruneEvaluationResult(kl: kl / n, accuracy: evaluation.labels.map { _ in Double(correct) / n },
                                     sparsity: Double(masks.units.filter { $0 == 0 }.count) / Double(masks.units.count))
    }
}

extension PruneEvaluation {
    /// The first `limit` examples of a dataset file, labels scored as eval scores them (HANS's collapse included).
    public init(path: String, limit: Int, every: Int, model: BertModel, tokenizer: BertTokenizer, options: PredictionOptions) throws {
        guard limit > 0, every > 0 else { throw ModelError.badInput("--eval-steps and --max-eval-samples must be positive") }
        let dataset = try Dataset.load(path, limit: limit)
        guard dataset.count > 0 else { throw DataError.badFile(path: path, reason: "has no examples") }
        let encodings = try encodeAll(dataset.examples, tokenizer: tokenizer, options: options)
        let labelled = dataset.examples.allSatisfy { $0.label != nil }
        let indices = try labelled ? LabelMapping.make(for: dataset, modelLabels: model.config.labels).indices(for: dataset.examples) : nil
        self.init(encodings: encodings, labels: indices?.gold, predictedClass: indices?.predicted, every: every)
    }
}
