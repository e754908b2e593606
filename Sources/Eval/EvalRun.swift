// Many subnetworks × several datasets in one pass: each dataset is tokenized once, each subnetwork
// compiles its plan once, and results come back per (subnetwork, dataset).
import Checkpoint
import Foundation
import Kernels
import Model
import Tokenizer

/// One thing to evaluate: the full model or a subnetwork.
public struct EvalTarget {
    public var name: String
    public var index: Int
    public var sparsity: Double
    public var seed: JSONValue
    /// nil: the full model.
    public var masks: MaskValues?

    public init(name: String, index: Int, sparsity: Double, seed: JSONValue, masks: MaskValues?) {
        self.name = name
        self.index = index
        self.sparsity = sparsity
        self.seed = seed
        self.masks = masks
    }
}

public struct PreparedDataset {
    public let dataset: Dataset
    public let mapping: LabelMapping
    public let encodings: [Encoding]
    public let tokenizeSeconds: Double

    public init(dataset: Dataset, model: BertModel, tokenizer: BertTokenizer, options: PredictionOptions) throws {
        self.dataset = dataset
        mapping = try LabelMapping.make(for: dataset, modelLabels: model.config.labels)
        let t = Date()
        encodings = try encodeAll(dataset.examples, tokenizer: tokenizer, options: options)
        tokenizeSeconds = Date().timeIntervalSince(t)
    }

    /// The key the reference repository's eval files use for this dataset.
    public var referenceKey: String {
        let base = dataset.name.replacingOccurrences(of: ".tsv", with: "").replacingOccurrences(of: ".txt", with: "")
            .replacingOccurrences(of: ".jsonl", with: "").replacingOccurrences(of: ".csv", with: "")
        switch (dataset.format, base) {
        case (.mnli, "dev_matched"): return "mnli-matched"
        case (.mnli, "dev_mismatched"): return "mnli-mismatched"
        case (.qqp, "dev"): return "qqp"
        case (.paws, _): return "paws-qqp"
        case (.hans, _): return "hans"
        default: return base
        }
    }
}

public struct TargetResult {
    public var target: EvalTarget
    public var metrics: [Metrics]          // per dataset
    public var predictions: [[Int]]        // per dataset, per example
    public var logits: [[[Float]]]         // per dataset, per example (kept only when asked)
    public var seconds: Double
    public var flops: Double
}

/// Evaluates every target on every dataset. `progress(done)` counts examples over all targets.
public func evaluateTargets(model: BertModel, datasets: [PreparedDataset], targets: [EvalTarget], ablation: Ablation,
                            batchSize: Int, keepLogits: Bool, pool: ThreadPool = .shared,
                            progress: ((Int) -> Void)? = nil) throws -> [TargetResult] {
    var results: [TargetResult] = []
    var done = 0
    for t in targets {
        let start = Date()
        var plan: ExecutionPlan? = nil
        var soft: (masks: MaskValues, ablation: Ablation)? = nil
        if let m = t.masks {
            if m.isBinary { plan = try ExecutionPlan.compile(model: model, masks: m, ablation: ablation) }
            else { soft = (m, ablation) }
        }
        var metrics: [Metrics] = [], preds: [[Int]] = [], allLogits: [[[Float]]] = []
        var flops = 0.0
        for d in datasets {
            let base = done
            let logits = try predictLogits(model: model, encodings: d.encodings, batchSize: batchSize, plan: plan, soft: soft, pool: pool,
                                           progress: { progress?(base + $0) })
            done += d.encodings.count
            let p = logits.map(argmax)
            metrics.append(Metrics.compute(dataset: d.dataset, predictions: p, mapping: d.mapping))
            preds.append(p)
            if keepLogits { allLogits.append(logits) }
            flops += (plan ?? model.fullPlan).flops(model: model, sequenceLengths: d.encodings.map(\.count))
        }
        results.append(TargetResult(target: t, metrics: metrics, predictions: preds, logits: allLogits,
                                    seconds: Date().timeIntervalSince(start), flops: flops))
    }
    return results
}

/// The reference repository's data/eval shape: {"seed": […], "sparsity": […], "<dataset>": […],
/// "<heuristic>_<subcase>": […]}, one list entry per subnetwork.
public func heuristicCoreTable(_ results: [TargetResult], datasets: [PreparedDataset]) -> JSONValue {
    var columns: [(String, [JSONValue])] = [("seed", results.map { r in
        if case .string = r.target.seed { return r.target.seed }
        if case .null = r.target.seed { return .string(r.target.name) }
        return .string(r.target.seed.compact)
    }), ("sparsity", results.map { .float(($0.target.sparsity * 10_000).rounded() / 10_000) })]
    for (i, d) in datasets.enumerated() {
        if d.dataset.format == .hans {
            let keys = results.first?.metrics[i].subcases.map(\.0) ?? []
            for (k, key) in keys.enumerated() {
                let heuristic = d.dataset.examples.first { $0.subcase == key }?.heuristic ?? "hans"
                columns.append(("\(heuristic)_\(key)", results.map { .float(($0.metrics[i].subcases[k].1 * 1000).rounded() / 1000) }))
            }
        } else {
            columns.append((d.referenceKey, results.map { .float(($0.metrics[i].accuracy * 10_000).rounded() / 10_000) }))
        }
    }
    return .object(columns.map { ($0.0, .array($0.1)) })
}
