// Unit ablation (Michel et al.'s ablation study; the reference's --try-removing-edges): each head and each MLP
// removed in turn — mean or zero ablation — from the full model or a subnetwork, and every unit's change in
// loss and accuracy per dataset. Every variant is a target of one evaluation pass, so each runs through its own
// compiled plan and variants share their unchanged leading layers (prefix sharing): it runs at eval speed.
//
//   loss = mean over examples of −log p(gold), p the model's distribution summed into the dataset's scoring
//          classes (HANS: neutral + contradiction = non-entailment), as accuracy scores them
//   Δ    = ablated − base (Δloss > 0: the unit helped)
import Checkpoint
import Eval
import Foundation
import Model

public struct UnitAblation: Sendable {
    public struct Outcome: Sendable {
        public var accuracy: Double
        /// nil when the dataset has no gold labels.
        public var loss: Double?
    }
    public var baseName: String
    public var datasets: [String]
    /// Per dataset.
    public var base: [Outcome]
    /// Every unit the base keeps, in store order, with its outcome per dataset.
    public var units: [(unit: PrunableUnit, outcomes: [Outcome])]
    public var layers: Int, heads: Int

    public func delta(_ u: Int, dataset d: Int) -> (accuracy: Double, loss: Double?) {
        let o = units[u].outcomes[d]
        let b = base[d]
        return (o.accuracy - b.accuracy, o.loss.flatMap { l in b.loss.map { l - $0 } })
    }
}

/// Ablates each unit `base` keeps (nil: the full model) on every dataset; with `only`, just those of them.
public func ablateUnits(
    model: BertModel, datasets: [PreparedDataset], base: MaskValues?, baseName: String, ablation: Ablation,
    only: Set<PrunableUnit>? = nil, batchSize: Int, progress: ((Int) -> Void)? = nil
) throws -> UnitAblation {
    let L = model.layerCount
    let H = model.headCount
    let start = base ?? MaskValues.ones(layers: L, heads: H)
    var targets = [EvalTarget(name: baseName, index: 0, sparsity: start.sparsity, seed: .null, masks: base)]
    var units: [PrunableUnit] = []
    for i in 0..<(L * H + L) {
        let u = PrunableUnit(index: i, layers: L, heads: H)
        if let only, !only.contains(u) { continue }
        var m = start
        if let h = u.head {
            guard m.heads[u.layer][h] > 0 else { continue }
            m.heads[u.layer][h] = 0
        } else {
            guard m.mlps[u.layer] > 0 else { continue }
            m.mlps[u.layer] = 0
        }
        units.append(u)
        targets.append(
            EvalTarget(name: u.description, index: targets.count, sparsity: m.sparsity, seed: .null, masks: m))
    }
    let results = try evaluateTargets(
        model: model, datasets: datasets, targets: targets, ablation: ablation, batchSize: batchSize,
        keepLogits: true, progress: progress)
    func outcomes(_ r: TargetResult) -> [UnitAblation.Outcome] {
        datasets.enumerated().map { d, set in
            UnitAblation.Outcome(accuracy: r.metrics[d].accuracy, loss: goldLoss(r.logits[d], set))
        }
    }
    return UnitAblation(
        baseName: baseName, datasets: datasets.map(\.referenceKey), base: outcomes(results[0]),
        units: zip(units, results.dropFirst()).map { ($0, outcomes($1)) }, layers: L, heads: H)
}

/// Mean −log p(gold scoring class); nil when some example has no gold label.
func goldLoss(_ logits: [[Float]], _ set: PreparedDataset) -> Double? {
    let (gold, predicted) = set.mapping.indices(for: set.dataset.examples)
    guard let gold, !gold.isEmpty else { return nil }
    var total = 0.0
    for (row, g) in zip(logits, gold) {
        let p = softmaxDouble(row)
        let pg = zip(p, predicted).reduce(0.0) { $0 + ($1.1 == g ? $1.0 : 0) }
        total -= log(max(pg, 1e-300))
    }
    return total / Double(gold.count)
}

extension UnitAblation {
    public var json: JSONValue {
        func o(_ x: Outcome) -> JSONValue {
            .object([("accuracy", .float(x.accuracy)), ("loss", x.loss.map { .float($0) } ?? .null)])
        }
        let baseMetrics: [(String, JSONValue)] = zip(datasets, base).map { ($0, o($1)) }
        return .object([
            ("base", .string(baseName)), ("datasets", .array(datasets.map { .string($0) })),
            ("base_metrics", .object(baseMetrics)),
            ("units", .array(units.indices.map(unitJSON))),
        ])
    }

    func unitJSON(_ u: Int) -> JSONValue {
        let metrics: [(String, JSONValue)] = datasets.indices.map { d in
            let delta = self.delta(u, dataset: d)
            let o = units[u].outcomes[d]
            let fields: [(String, JSONValue)] = [
                ("accuracy", .float(o.accuracy)), ("loss", o.loss.map { .float($0) } ?? .null),
                ("delta_accuracy", .float(delta.accuracy)), ("delta_loss", delta.loss.map { .float($0) } ?? .null),
            ]
            return (datasets[d], .object(fields))
        }
        return .object([("unit", .string(units[u].unit.description)), ("metrics", .object(metrics))])
    }

    /// A layers × heads (+ MLP) heatmap of Δloss on dataset `d` (Δ accuracy's drop when it has no labels);
    /// units the base does not keep are grey.
    public func svg(dataset d: Int) -> String {
        var value: [PrunableUnit: Double] = [:]
        for u in units.indices {
            let dl = delta(u, dataset: d)
            value[units[u].unit] = dl.loss ?? -dl.accuracy
        }
        let measure = base[d].loss == nil ? "accuracy drop" : "Δ loss"
        return svgHeatmap(
            title: "Ablating one unit: \(measure), \(datasets[d])", layers: layers, heads: heads,
            values: { value[.head($0, $1)] }, mlp: { value[.mlp($0)] }, maxValue: max(1e-9, value.values.max() ?? 1),
            legend: "\(measure) when the unit is removed from \(baseName); grey: not in it")
    }

    /// One heatmap per dataset: `path` itself for one dataset, PATH-KEY.svg for several.
    public func writeHeatmaps(_ path: String) throws {
        for (d, key) in datasets.enumerated() {
            let file = datasets.count == 1 ? path : (path as NSString).deletingPathExtension + "-\(key).svg"
            try writeAtomically(Array(svg(dataset: d).utf8), to: file)
        }
    }
}

/// The same units removed from several subnetworks (the matching ones): per unit and dataset, Δ accuracy and
/// Δ loss in each subnetwork that keeps the unit, with their mean and range.
public func acrossSubnetworks(_ runs: [UnitAblation]) -> JSONValue {
    guard let first = runs.first else { return .object([("subnetworks", .array([]))]) }
    var order: [PrunableUnit] = []
    for r in runs { for u in r.units where !order.contains(u.unit) { order.append(u.unit) } }
    func summary(_ xs: [Double]) -> JSONValue {
        xs.isEmpty
            ? .null
            : .object([
                ("mean", .float(xs.reduce(0, +) / Double(xs.count))), ("min", .float(xs.min()!)),
                ("max", .float(xs.max()!)), ("subnetworks", .int(xs.count)),
            ])
    }
    let perUnit: [JSONValue] = order.map { unit in
        let metrics: [(String, JSONValue)] = first.datasets.indices.map { d in
            var acc: [Double] = []
            var loss: [Double] = []
            for r in runs {
                guard let u = r.units.firstIndex(where: { $0.unit == unit }) else { continue }
                let delta = r.delta(u, dataset: d)
                acc.append(delta.accuracy)
                if let l = delta.loss { loss.append(l) }
            }
            return (first.datasets[d], .object([("delta_accuracy", summary(acc)), ("delta_loss", summary(loss))]))
        }
        return .object([("unit", .string(unit.description)), ("metrics", .object(metrics))])
    }
    return .object([("units", .array(perUnit)), ("subnetworks", .array(runs.map(\.json)))])
}
