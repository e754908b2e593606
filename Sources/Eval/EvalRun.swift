// Many subnetworks × several datasets in one pass: each dataset is tokenized once, each subnetwork
// compiles its plan once, and results come back per (subnetwork, dataset).
import Checkpoint
import Failures
import Foundation
import Kernels
import Model
import Tokenizer

/// One thing to evaluate: the full model or a subnetwork.
/// The rule that made a subnetwork's evaluation masks, recorded with every result.
public enum MaskRule: Equatable, Sendable, CustomStringConvertible {
    /// The masks as stored (binary), or as a mask file gives them; with the threshold the store says made them
    /// binary from log α (hcore prune and the reference's import record it), when it says.
    case stored(madeAtThreshold: Float?)
    /// The reference's deterministic rule on log α, soft values (its eval scripts without -t).
    case deterministicSoft
    /// The reference's deterministic rule made binary at a threshold (its -t).
    case deterministicThreshold(Float)

    public var threshold: Float? {
        if case .deterministicThreshold(let t) = self { return t }
        return nil
    }

    /// Whether the masks are the stored ones.
    var isStored: Bool {
        if case .stored = self { return true }
        return false
    }

    public var description: String {
        switch self {
        case .stored(let t?): return "as stored (deterministic, threshold \(t))"
        case .stored(nil): return "as stored"
        case .deterministicSoft: return "deterministic (soft)"
        case .deterministicThreshold(let t): return "deterministic, threshold \(t)"
        }
    }
}

public struct EvalTarget: Sendable {
    public var name: String
    public var index: Int
    public var sparsity: Double
    public var seed: JSONValue
    /// nil: the full model.
    public var masks: MaskValues?
    /// The threshold that made soft values binary, when one did (a threshold sweep, a threshold given).
    public var threshold: Float? = nil
    /// The rule that made `masks` (nil: the full model).
    public var maskRule: MaskRule? = nil
    /// The fine-tuning step: of a checkpoint evaluated as the full model (`evaluateCheckpoints`), or of the
    /// checkpoint a stored subnetwork was pruned from (its metadata's `step`).
    public var step: Int? = nil
    /// The target sparsity a stored subnetwork was pruned for (its metadata's `target_sparsity`).
    public var targetSparsity: Double? = nil

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
    /// The dataset's key in documents and metadata: the reference's spelling (`referenceSpelling`), or, when
    /// an earlier set of the same evaluation took it, that spelling and the file's base name.
    public private(set) var referenceKey: String

    public init(dataset: Dataset, model: BertModel, tokenizer: BertTokenizer, options: PredictionOptions) throws {
        self.dataset = dataset
        mapping = try LabelMapping.make(for: dataset, modelLabels: model.config.labels)
        let t = Date()
        encodings = try encodeAll(dataset.examples, tokenizer: tokenizer, options: options)
        tokenizeSeconds = Date().timeIntervalSince(t)
        referenceKey = Self.referenceSpelling(dataset)
    }

    static func baseName(_ dataset: Dataset) -> String {
        dataset.name.replacingOccurrences(of: ".tsv", with: "").replacingOccurrences(of: ".txt", with: "")
            .replacingOccurrences(of: ".jsonl", with: "").replacingOccurrences(of: ".csv", with: "")
            .replacingOccurrences(of: ".zst", with: "")
    }

    /// The key the reference repository's eval files use for this dataset.
    static func referenceSpelling(_ dataset: Dataset) -> String {
        let base = baseName(dataset)
        switch (dataset.format, base) {
        case (.mnli, "dev_matched"): return "mnli-matched"
        case (.mnli, "dev_mismatched"): return "mnli-mismatched"
        case (.qqp, "dev"): return "qqp"
        case (.paws, _): return "paws-qqp"
        case (.hans, _): return "hans"
        default: return base
        }
    }

    /// Gives every set a key of its own: a repeated spelling becomes the file's base name (or
    /// `spelling-basename` when that is taken too), then `-2`, `-3`, … (two HANS files would otherwise both be
    /// "hans").
    public static func distinctKeys(_ sets: [PreparedDataset]) -> [PreparedDataset] {
        var taken = Set<String>()
        return sets.map { d in
            var out = d
            var key = d.referenceKey
            if taken.contains(key) {
                let base = baseName(d.dataset)
                key = taken.contains(base) ? d.referenceKey + "-" + base : base
            }
            var k = 2
            let stem = key
            while taken.contains(key) {
                key = "\(stem)-\(k)"
                k += 1
            }
            taken.insert(key)
            out.referenceKey = key
            return out
        }
    }
}

/// How many examples of a dataset an evaluation reads.
public enum ExampleLimit: Sendable, Equatable {
    /// The first n.
    case first(Int)
    /// n drawn with a seed, spread evenly over HANS subcases (else gold labels): `stratifiedSample`.
    case sample(Int, seed: UInt64)
    /// The first n of each HANS subcase (the reference's -n, which caps each case).
    case perSubcase(Int)
}

/// Loads each dataset and tokenizes it once for an evaluation; skipped rows go to `warn`.
public func prepareDatasets(
    _ paths: [String], keys: Dataset.Keys, skipBadRows: Bool, limit: ExampleLimit?, model: BertModel,
    tokenizer: BertTokenizer, options: PredictionOptions, warn: (String) -> Void
) throws -> [PreparedDataset] {
    PreparedDataset.distinctKeys(
        try paths.map { path in
            var ds = try Dataset.load(path, keys: keys, skipBadRows: skipBadRows, limit: limit.first)
            if case .perSubcase(let n) = limit { ds = ds.limitedPerSubcase(n) }
            if case .sample(let n, let seed) = limit { ds = ds.sampled(n, seed: seed, warn: warn) }
            for s in ds.skipped { warn("skipped \(s)") }
            // An empty set would score "accuracy 0" for every subnetwork: refuse it.
            guard ds.count > 0 else {
                throw DataError.badFile(
                    path: path,
                    reason: ds.skipped.isEmpty
                        ? "has no examples" : "has no usable examples (\(ds.skipped.count) malformed rows skipped)")
            }
            let prepared = try PreparedDataset(dataset: ds, model: model, tokenizer: tokenizer, options: options)
            // Accuracy needs every example's gold label: without one it would read "0.0 over 0 scored".
            if let unscored = ds.examples.first(where: { prepared.mapping.goldClass(of: $0) == nil }) {
                throw DataError.badFile(
                    path: path,
                    reason:
                        "example \(unscored.line) has no label this model can score (\(unscored.label ?? "none"); an unlabelled set, label −1, cannot be evaluated: `hcore predict` classifies it)"
                )
            }
            return prepared
        })
}

extension Optional where Wrapped == ExampleLimit {
    /// The count to stop reading at, when the limit is a plain first-n.
    var first: Int? {
        if case .first(let n)? = self { return n }
        return nil
    }
}

public struct TargetResult {
    public var target: EvalTarget
    public var metrics: [Metrics]  // per dataset
    public var predictions: [[Int]]  // per dataset, per example
    public var logits: [[[Float]]]  // per dataset, per example (kept only when asked)
    public var seconds: Double
    public var flops: Double
}

/// Per-layer identity of a target's computation: targets whose first k keys are equal compute the same
/// first k layers bit for bit (same masks, same ablation, same code path — a compiled plan folds pruned
/// constants into biases and rounds differently from the general path), so their hidden states after
/// layer k are shared.
func layerKeys(_ t: EvalTarget, layers: Int, heads: Int) -> [String] {
    let m = t.masks ?? MaskValues.ones(layers: layers, heads: heads)
    let path = t.masks == nil ? "full" : m.isBinary ? "plan" : "general"
    return (0..<layers).map { l in
        path + ":" + m.heads[l].map { String($0) }.joined(separator: ",") + "|" + String(m.mlps[l])
    }
}

/// Statistics of one evaluation pass.
public struct EvalStats {
    public var layerRuns = 0  // layers actually computed (per batch)
    public var layerRunsUnshared = 0  // layers that would be computed without prefix sharing
    public init() {}
}

/// Evaluates every target on every dataset, batches outermost: for each batch, targets run in an order
/// where neighbours share their leading layers, and a target starts from the cached hidden states of its
/// predecessor after their common prefix (`prefixSharing`). Results are exact: a shared layer computes
/// the same function. `progress(done)` counts examples over all targets.
public func evaluateTargets(
    model: BertModel, datasets: [PreparedDataset], targets: [EvalTarget], ablation: Ablation,
    batchSize: Int, keepLogits: Bool, prefixSharing: Bool = true, planBudgetBytes: Int = 2 << 30,
    pool: ThreadPool = .shared, stats: UnsafeMutablePointer<EvalStats>? = nil,
    progress: ((Int) -> Void)? = nil
) throws -> [TargetResult] {
    let L = model.layerCount
    let D = model.hidden
    let C = model.config.numLabels
    let keys = targets.map { layerKeys($0, layers: L, heads: model.headCount) }
    let order = targets.indices.sorted {
        keys[$0].lexicographicallyPrecedes(keys[$1]) || (keys[$0] == keys[$1] && $0 < $1)
    }
    var results = targets.map {
        TargetResult(target: $0, metrics: [], predictions: [], logits: [], seconds: 0, flops: 0)
    }
    var done = 0
    // Groups of targets (in sharing order) whose compiled plans fit the memory budget together.
    var groups: [[Int]] = [[]]
    var groupBytes = 0
    var plans = [ExecutionPlan?](repeating: nil, count: targets.count)
    var softs = [(masks: MaskValues, ablation: Ablation)?](repeating: nil, count: targets.count)
    func compile(_ i: Int) throws {
        guard let m = targets[i].masks else { return }
        if m.isBinary {
            plans[i] = try ExecutionPlan.compile(model: model, masks: m, ablation: ablation)
        } else {
            softs[i] = (m, ablation)
        }
    }
    for i in order {
        let bytes = targets[i].masks.map { $0.isBinary ? model.planBytes(masks: $0) : 0 } ?? 0
        if groupBytes + bytes > planBudgetBytes && !groups[groups.count - 1].isEmpty {
            groups.append([])
            groupBytes = 0
        }
        groups[groups.count - 1].append(i)
        groupBytes += bytes
    }
    var perDataset = [[[Float]]](repeating: [], count: targets.count)  // logits of the current dataset
    for d in datasets {
        for i in targets.indices { perDataset[i] = [[Float]](repeating: [], count: d.encodings.count) }
        let batches = lengthSortedBatches(d.encodings, batchSize: batchSize)
        let scratch = ScratchArena()  // reused by every batch (see Model/Scratch.swift)
        for group in groups {
            for i in group { try compile(i) }
            for b in batches {
                let batch = TokenBatch(b.map { d.encodings[$0] })
                let N = batch.tokenCount
                scratch.reset()
                // [L+1][N, D]: embeddings, then each layer's output
                let states = (0...L).map { _ in scratch.take(N * D) }
                let work = scratch.take(N * D)  // [N, D]
                try model.embeddings(batch, into: states[0], pool: pool)
                func sharedPrefix(_ a: Int, _ b: Int) -> Int {
                    guard prefixSharing else { return 0 }
                    var k = 0
                    while k < L && keys[a][k] == keys[b][k] { k += 1 }
                    return k
                }
                for (pos, i) in group.enumerated() {
                    let t0 = Date()
                    let k = pos > 0 ? sharedPrefix(group[pos - 1], i) : 0
                    // Keep only the layer outputs the next target will start from.
                    let keep = pos + 1 < group.count ? sharedPrefix(i, group[pos + 1]) : 0
                    work.update(from: states[k], count: N * D)
                    try model.runLayers(
                        work, batch: batch, range: k..<L, plan: plans[i], soft: softs[i],
                        lastLayer: defaultLastLayer, xHoldsEmbeddings: k == 0, pool: pool
                    ) { l, h in
                        if l + 1 <= keep { states[l + 1].update(from: h, count: N * D) }
                    }
                    stats?.pointee.layerRuns += L - k
                    stats?.pointee.layerRunsUnshared += L
                    let logits = try model.logits(fromHidden: work, batch: batch, pool: pool)
                    for (r, e) in b.enumerated() { perDataset[i][e] = Array(logits[(r * C)..<((r + 1) * C)]) }
                    results[i].seconds += Date().timeIntervalSince(t0)
                    done += b.count
                    progress?(done)
                }
            }
            for i in group {
                plans[i] = nil
                softs[i] = nil
            }
        }
        for i in targets.indices {
            let p = perDataset[i].map(argmax)
            results[i].metrics.append(Metrics.compute(dataset: d.dataset, predictions: p, mapping: d.mapping))
            results[i].predictions.append(p)
            if keepLogits { results[i].logits.append(perDataset[i]) }
            results[i].flops += model.flops(masks: targets[i].masks, sequenceLengths: d.encodings.map(\.count))
        }
    }
    return results
}
