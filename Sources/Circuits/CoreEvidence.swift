// One heuristic core, with its evidence — what `circuits core`, `compose`, `reads`, the report and the demo all use.
//
//   matching   the subnetworks that match the full model in-domain: stored metric `metric` (e.g. eval/dev,
//              written by `hcore eval --write-back`) ≥ reference − margin, the reference being the full
//              model's value when given, else the best subnetwork's (said in the output). Fewer than
//              `minimumCount` matching: refused, since an intersection of one or two masks says nothing.
//   core       units kept by ≥ `fraction` of the matching subnetworks (CoreReport).
//   null       is the core larger than masks of the same shape would share by chance? Each permutation
//              shuffles, inside every matching subnetwork, which heads of each layer are kept (same count
//              per layer) and which layers keep their MLP (same count), and recounts the core; the p-value is
//              (1 + #{null ≥ observed}) / (1 + permutations). Seeded, so it reproduces.
//   stability  each unit's share of bootstrap resamples of the matching subnetworks (with replacement) in
//              whose core it lies. A resample holds only original masks, so at fraction 1 every member is
//              always in: there it says which outside units would enter; below 1 it is each member's stability.
//   sweep      core size, null mean and p-value at fractions 1.0, 0.9, …, 0.5.
import Checkpoint
import Eval
import Failures
import Foundation
import Kernels
import Model
import Store

public struct MatchRule: Sendable {
    public var metric: String
    /// The full model's value of `metric`; nil: the best matching candidate's.
    public var reference: Double?
    /// Allowed shortfall, in the metric's units (accuracy 0.02 = 2 points).
    public var margin: Double
    public var minimumCount: Int
    public init(metric: String, reference: Double? = nil, margin: Double = 0.02, minimumCount: Int = 3) {
        (self.metric, self.reference, self.margin, self.minimumCount) = (metric, reference, margin, minimumCount)
    }
}

public struct CoreEvidence: Sendable {
    public struct NullResult: Sendable {
        public var fraction: Double, observed: Int, nullMean: Double, pValue: Double
    }
    public var report: CoreReport
    /// How the subnetworks were chosen, in words.
    public var selection: String
    public var excluded: [String]
    public var null: NullResult
    public var sweep: [NullResult]
    /// Per unit (store order): share of bootstrap resamples whose core contains it.
    public var stability: [Double]
    public var permutations: Int, bootstraps: Int, seed: UInt64
    /// Presence against the OOD metric (`report.metric`), sparsity partialled out; empty without a metric.
    public var presence: [PresenceStatistic] = []
}

/// Chooses the matching subnetworks by `rule` (nil: every subnetwork given) and measures their core.
public func heuristicCore(
    _ subs: [StoredSubnetwork], layout: StoreLayout, rule: MatchRule?, fraction: Double = 1.0,
    metric: String? = nil, permutations: Int = 1000, bootstraps: Int = 1000, seed: UInt64 = 0
) throws -> CoreEvidence {
    guard (0...1).contains(fraction), fraction > 0 else { throw SettingError("fraction", "must lie in (0, 1]") }
    guard permutations >= 0 else { throw SettingError("permutations", "must be ≥ 0") }
    guard bootstraps >= 0 else { throw SettingError("bootstrap", "must be ≥ 0") }
    var matching = subs
    var selection = "all \(subs.count) subnetworks (no in-domain rule given)"
    if let rule {
        let scored = subs.compactMap { s in s.meta.get(rule.metric)?.doubleValue.map { (s, $0) } }
        guard !scored.isEmpty else {
            throw DataError.badFile(
                path: "the store",
                reason:
                    "no subnetwork has the metric '\(rule.metric)' in its metadata; write the evaluation's metrics back into the store (keys eval/DATASET)"
            )
        }
        let reference = rule.reference ?? scored.map(\.1).max()!
        matching = scored.filter { $0.1 >= reference - rule.margin - 1e-12 }.map(\.0)
        selection =
            "\(matching.count) of \(subs.count) subnetworks with \(rule.metric) ≥ \(reference) − \(rule.margin) ("
            + (rule.reference == nil
                ? "the best subnetwork's value; no full-model value was given" : "the full model's value")
            + ")"
        guard matching.count >= rule.minimumCount else {
            throw SettingError(
                "margin",
                "leaves only \(matching.count) subnetworks matching in-domain (\(selection)); a core needs at least \(rule.minimumCount): widen the margin or prune more seeds"
            )
        }
    }
    guard !matching.isEmpty else {
        throw DataError.badFile(path: "the store", reason: "holds no subnetworks to find a core in")
    }
    let names = Set(matching.map(\.name))
    var rng = SplitMix64(seed: seed)
    let masks = matching.map { $0.mask.map { $0 == 1 } }
    let sweep = [1.0, 0.9, 0.8, 0.7, 0.6, 0.5].map { f in
        intersectionNull(masks, layout: layout, fraction: f, permutations: permutations, rng: &rng)
    }
    let oodMetric = metric ?? defaultOODMetric(matching)
    return CoreEvidence(
        report: findCore(matching, layout: layout, fraction: fraction, metric: oodMetric), selection: selection,
        excluded: subs.map(\.name).filter { !names.contains($0) },
        null: intersectionNull(masks, layout: layout, fraction: fraction, permutations: permutations, rng: &rng),
        sweep: sweep,
        stability: bootstrapStability(masks, layout: layout, fraction: fraction, bootstraps: bootstraps, rng: &rng),
        permutations: permutations, bootstraps: bootstraps, seed: seed,
        presence: oodMetric.map { presenceStatistics(matching, metric: $0, permutations: permutations, seed: seed) }
            ?? [])
}

/// Units kept by ≥ `fraction` of `masks`.
func coreSize(_ masks: [[Bool]], fraction: Double) -> Int {
    guard let U = masks.first?.count else { return 0 }
    let need = Int((fraction * Double(masks.count) - 1e-9).rounded(.up))
    return (0..<U).filter { u in masks.reduce(0) { $0 + ($1[u] ? 1 : 0) } >= need }.count
}

/// The layer-stratified permutation null of the core's size (see the file comment).
func intersectionNull(
    _ masks: [[Bool]], layout: StoreLayout, fraction: Double, permutations: Int, rng: inout SplitMix64
) -> CoreEvidence.NullResult {
    let observed = coreSize(masks, fraction: fraction)
    let L = layout.layers
    let H = layout.heads
    var atLeast = 0
    var total = 0
    for _ in 0..<permutations {
        let shuffled = masks.map { m -> [Bool] in
            var out = m
            for l in 0..<L {
                var row = Array(m[(l * H)..<((l + 1) * H)])
                rng.shuffle(&row)
                out.replaceSubrange((l * H)..<((l + 1) * H), with: row)
            }
            var mlps = Array(m[(L * H)...])
            rng.shuffle(&mlps)
            out.replaceSubrange((L * H)..., with: mlps)
            return out
        }
        let size = coreSize(shuffled, fraction: fraction)
        total += size
        if size >= observed { atLeast += 1 }
    }
    return .init(
        fraction: fraction, observed: observed,
        nullMean: permutations > 0 ? Double(total) / Double(permutations) : .nan,
        pValue: Double(1 + atLeast) / Double(1 + permutations))
}

/// Per unit: the share of bootstrap resamples (with replacement) whose core at `fraction` contains it.
func bootstrapStability(
    _ masks: [[Bool]], layout: StoreLayout, fraction: Double, bootstraps: Int, rng: inout SplitMix64
) -> [Double] {
    let U = layout.unitCount
    let n = masks.count
    var inCore = [Int](repeating: 0, count: U)
    let need = Int((fraction * Double(n) - 1e-9).rounded(.up))
    for _ in 0..<bootstraps {
        var counts = [Int](repeating: 0, count: U)
        for _ in 0..<n {
            let m = masks[Int(rng.next() % UInt64(n))]
            for u in 0..<U where m[u] { counts[u] += 1 }
        }
        for u in 0..<U where counts[u] >= need { inCore[u] += 1 }
    }
    return inCore.map { bootstraps > 0 ? Double($0) / Double(bootstraps) : .nan }
}

extension CoreEvidence {
    public var json: JSONValue {
        func n(_ r: NullResult) -> JSONValue {
            .object([
                ("fraction", .float(r.fraction)), ("core_size", .int(r.observed)), ("null_mean", .float(r.nullMean)),
                ("p_value", .float(r.pValue)),
            ])
        }
        guard case .object(var fields) = report.json else { return report.json }
        fields += [
            ("selection", .string(selection)), ("excluded", .array(excluded.map { .string($0) })),
            ("null", n(null)), ("sweep", .array(sweep.map(n))), ("permutations", .int(permutations)),
            ("bootstraps", .int(bootstraps)), ("seed", .int(Int(seed))),
            ("stability", .object(stability.indices.map { (report.name($0).description, .float(stability[$0])) })),
            (
                "presence_vs_metric",
                .object(
                    presence.map {
                        (
                            report.name($0.unit).description,
                            .object([("partial_r", .float($0.r)), ("p", .float($0.p)), ("q_bh", .float($0.q))])
                        )
                    })
            ),
        ]
        return .object(fields)
    }

    public var table: [String] {
        // The plain correlation line of CoreReport.table is replaced by the partialled statistics below.
        var lines = ["subnetworks: \(selection)"] + report.table.filter { !$0.hasPrefix("units whose presence tracks") }
        lines.append(
            String(
                format:
                    "core size %d; same-shape random masks share %.1f on average (layer-stratified permutation null, %d permutations, seed %d): p = %.4f",
                null.observed, null.nullMean, permutations, seed, null.pValue))
        // A resample holds only original masks, so at fraction 1 every member stays in its core: what the
        // bootstrap tells there is which outside units enter (how easily the core would grow).
        let members = report.core.map { "\(report.name($0)) \(String(format: "%.2f", stability[$0]))" }
        if !members.isEmpty && report.fraction < 1 {
            lines.append(
                "bootstrap stability of the core's members (\(bootstraps) resamples): "
                    + members.joined(separator: ", "))
        }
        let outsiders = stability.indices.filter { !report.core.contains($0) && stability[$0] > 0 }.sorted {
            stability[$0] > stability[$1]
        }.prefix(8)
        if !outsiders.isEmpty {
            lines.append(
                "units outside the core that enter it in bootstrap resamples (\(bootstraps)): "
                    + outsiders.map { "\(report.name($0)) \(String(format: "%.2f", stability[$0]))" }.joined(
                        separator: ", "))
        }
        if let metric = report.metric, presence.isEmpty {
            lines.append("presence vs \(metric): needs at least 4 matching subnetworks with the metric (not computed)")
        }
        if let metric = report.metric, !presence.isEmpty {
            let top = presence.sorted { $0.p < $1.p }.prefix(8).map {
                String(format: "%@ r %+.2f p %.3f q %.3f", report.name($0.unit).description, $0.r, $0.p, $0.q)
            }
            lines.append(
                "presence vs \(metric) over these subnetworks, sparsity partialled out (permutation p, Benjamini–Hochberg q): "
                    + top.joined(separator: "; "))
        }
        lines.append(
            "fraction sweep: "
                + sweep.map {
                    String(format: "%.1f → %d (null %.1f, p %.3f)", $0.fraction, $0.observed, $0.nullMean, $0.pValue)
                }.joined(separator: "; "))
        return lines
    }
}

/// The stored in-domain metric when there is exactly one candidate: an eval/ key that is not HANS or PAWS.
public func defaultInDomainMetric(_ subs: [StoredSubnetwork]) -> String? {
    let candidates = evalKeys(subs).filter { k in !["hans", "paws"].contains { k.lowercased().contains($0) } }
    return candidates.count == 1 ? candidates.first : nil
}

/// Every eval/… key in the subnetworks' metadata (what `hcore eval --write-back` stores).
func evalKeys(_ subs: [StoredSubnetwork]) -> Set<String> {
    var keys = Set<String>()
    for s in subs {
        if case .object(let kv) = s.meta { for (k, _) in kv where k.hasPrefix("eval/") { keys.insert(k) } }
    }
    return keys
}

/// A core asked for from the command line: a store, how subnetworks match, and the null's settings.
public struct CoreRequest: Sendable {
    public var store: String
    public var fraction = 1.0
    /// nil: `defaultInDomainMetric`, else every subnetwork.
    public var idMetric: String?, idReference: Double?
    public var margin = 0.02
    public var minimumCount = 3
    public var permutations = 1000, bootstraps = 1000
    public var seed: UInt64 = 0
    public init(store: String) { self.store = store }

    /// The evidence over the store's subnetworks (those `filter` keeps), checked against `model` when given.
    public func evidence(
        model: BertModel? = nil, filter: SubnetworkFilter? = nil, metric: String? = nil, warn: (String) -> Void
    ) throws -> CoreEvidence {
        let s = try SubnetworkStore.open(path: store, warn: warn)
        if let model { try s.check(against: model) }
        let subs = try filter.map { try $0.apply(s) } ?? s.subnetworks
        let rule = (idMetric ?? defaultInDomainMetric(subs)).map {
            MatchRule(metric: $0, reference: idReference, margin: margin, minimumCount: minimumCount)
        }
        return try heuristicCore(
            subs, layout: s.layout, rule: rule, fraction: fraction, metric: metric, permutations: permutations,
            bootstraps: bootstraps, seed: seed)
    }
}

/// One unit's presence against an out-of-domain metric over the matching subnetworks, sparsity partialled
/// out: r is the correlation of the residuals of presence (0/1) and of the metric after each is regressed
/// linearly on the subnetwork's sparsity; p from permuting the metric's residuals (Freedman–Lane), q the
/// Benjamini–Hochberg adjustment over every unit whose presence varies.
public struct PresenceStatistic: Sendable {
    public var unit: Int
    public var r: Double, p: Double, q: Double
}

public func presenceStatistics(_ subs: [StoredSubnetwork], metric: String, permutations: Int, seed: UInt64)
    -> [PresenceStatistic]
{
    let scored = subs.compactMap { s in s.meta.get(metric)?.doubleValue.map { (s, $0) } }
    guard scored.count >= 4, let U = scored.first?.0.mask.count else { return [] }
    let sparsity = scored.map { 1 - Double($0.0.mask.reduce(0) { $0 + Int($1) }) / Double(U) }
    func residuals(_ y: [Double]) -> [Double] {
        let mx = sparsity.reduce(0, +) / Double(y.count)
        let my = y.reduce(0, +) / Double(y.count)
        let sxx = sparsity.reduce(0) { $0 + ($1 - mx) * ($1 - mx) }
        let b = sxx > 0 ? zip(sparsity, y).reduce(0) { $0 + ($1.0 - mx) * ($1.1 - my) } / sxx : 0
        return zip(sparsity, y).map { $1 - my - b * ($0 - mx) }
    }
    let ry = residuals(scored.map(\.1))
    var rng = SplitMix64(seed: seed)
    let shuffles = (0..<permutations).map { _ -> [Double] in
        var y = ry
        rng.shuffle(&y)
        return y
    }
    var out: [PresenceStatistic] = []
    for u in 0..<U {
        let rx = residuals(scored.map { Double($0.0.mask[u]) })
        guard let r = pearson(rx, ry) else { continue }
        let extreme = shuffles.filter { abs(pearson(rx, $0) ?? 0) >= abs(r) - 1e-12 }.count
        out.append(PresenceStatistic(unit: u, r: r, p: Double(1 + extreme) / Double(1 + permutations), q: 1))
    }
    // Benjamini–Hochberg: q_(i) = min over j ≥ i of p_(j)·m/j.
    let order = out.indices.sorted { out[$0].p < out[$1].p }
    var running = 1.0
    for (rank, i) in order.enumerated().reversed() {
        running = min(running, out[i].p * Double(out.count) / Double(rank + 1))
        out[i].q = running
    }
    return out
}

/// The paper's OOD measure when the store has it: HANS non-entailment accuracy (eval/<hans key>/non-entailment).
public func defaultOODMetric(_ subs: [StoredSubnetwork]) -> String? {
    let keys = evalKeys(subs).filter { $0.lowercased().contains("hans") && $0.hasSuffix("/non-entailment") }
    return keys.count == 1 ? keys.first : nil
}
