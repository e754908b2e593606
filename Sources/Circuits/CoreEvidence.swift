// One heuristic core, with its evidence — what `circuits core`, `patch`, `compose`, the report and the demo
// all use (`heuristicCore`).
//
//   matching   the subnetworks that match the full model in-domain (`MatchRule`: accuracy > full − 3 points,
//              the reference's rule); fewer than 3: refused. Or, asked for explicitly, every subnetwork given.
//   core       units kept by ≥ `fraction` of the matching subnetworks (CoreReport).
//   null       is the core larger than masks of the same shape would share by chance? Heads and MLPs apart:
//              each permutation shuffles, inside every matching subnetwork, which heads of each layer are kept
//              (same count per layer) and recounts the heads kept in common; the MLPs likewise, shuffled
//              across layers (same count). A few always-kept MLPs would otherwise carry the p-value of a
//              core of heads. p = (1 + #{null ≥ observed}) / (1 + permutations), seeded.
//   split-half the seeds split at random into two halves, a core found in each: the Jaccard index of the two
//              halves' head cores, against the same for permuted masks — does a core found from half the
//              seeds reproduce in the other half?
//   sweep      head-core size, null mean and p-value at fractions 1.0, 0.9, …, 0.5.
//   presence   with an OOD metric, each unit's presence against it, sparsity partialled out.
import Checkpoint
import Eval
import Failures
import Foundation
import Kernels
import Model
import Store

public struct CoreEvidence: Sendable {
    public struct NullResult: Sendable {
        public var fraction: Double, observed: Int, nullMean: Double, pValue: Double
    }
    /// Two random halves of the matching subnetworks, each with its own core.
    public struct SplitHalf: Sendable {
        public var splits: Int
        /// Mean Jaccard index of the two halves' head cores, and the same for permuted masks.
        public var jaccard: Double, nullJaccard: Double
        /// Mean size of a half's head core (the full core's is `observed` of the head null).
        public var halfCoreSize: Double
    }
    public var report: CoreReport
    /// How the subnetworks were chosen, in words.
    public var selection: String
    /// The rule that chose them; nil when every subnetwork given was taken.
    public var rule: MatchRule?
    public var excluded: [String]
    public var headNull: NullResult
    public var mlpNull: NullResult
    /// The head null at fractions 1.0 … 0.5.
    public var sweep: [NullResult]
    public var splitHalf: SplitHalf
    public var permutations: Int, seed: UInt64
    /// Presence against the OOD metric (`report.metric`), sparsity partialled out; empty without a metric.
    public var presence: [PresenceStatistic] = []

    public var coreHeads: [(layer: Int, head: Int)] { report.coreHeads }
    public var coreMLPs: [Int] { report.core.compactMap { report.name($0).head == nil ? report.name($0).layer : nil } }
}

/// The core's settings beyond the matching rule.
public struct CoreSettings: Sendable {
    public var fraction = 1.0
    public var permutations = 1000
    public var splits = 200
    public var seed: UInt64 = 0
    /// An OOD metric of the metadata to test each unit's presence against (nil: `defaultOODMetric`).
    public var oodMetric: String?
    public init() {}

    func check() throws {
        guard fraction.isFinite, fraction > 0, fraction <= 1 else {
            throw SettingError("fraction", "must lie in (0, 1], not \(fraction)")
        }
        guard (0...1_000_000).contains(permutations) else { throw SettingError("permutations", "must be in 0…1000000") }
        guard (0...1_000_000).contains(splits) else { throw SettingError("splits", "must be in 0…1000000") }
    }
}

/// The heuristic core: the subnetworks `rule` says match the full model in-domain (nil: all of `scored`,
/// said in the selection), the units they keep, and its evidence (see the file comment).
public func heuristicCore(
    _ scored: [ScoredSubnetwork], rule: MatchRule?, layout: StoreLayout, settings: CoreSettings = CoreSettings()
) throws -> CoreEvidence {
    try settings.check()
    var matching = scored.map(\.subnetwork)
    var excluded: [String] = []
    var selection = "all \(scored.count) subnetworks given (no in-domain rule)"
    if let rule {
        (matching, excluded) = try matchingSubnetworks(scored, rule: rule)
        selection = "\(matching.count) of \(scored.count) subnetworks match the full model in-domain: \(rule.words)"
    }
    guard !matching.isEmpty else {
        throw DataError.badFile(path: "the store", reason: "holds no subnetworks to find a core in")
    }
    return evidence(
        matching, layout: layout, settings: settings, selection: selection, rule: rule, excluded: excluded)
}

/// The same over subnetworks without in-domain values: every one of them, said so.
public func heuristicCore(allOf subs: [StoredSubnetwork], layout: StoreLayout, settings: CoreSettings = CoreSettings())
    throws -> CoreEvidence
{
    try heuristicCore(subs.map { ScoredSubnetwork($0, inDomain: .nan) }, rule: nil, layout: layout, settings: settings)
}

func evidence(
    _ matching: [StoredSubnetwork], layout: StoreLayout, settings: CoreSettings, selection: String, rule: MatchRule?,
    excluded: [String]
) -> CoreEvidence {
    var rng = SplitMix64(seed: settings.seed)
    let masks = matching.map { $0.mask.map { $0 == 1 } }
    let P = settings.permutations
    let sweep = [1.0, 0.9, 0.8, 0.7, 0.6, 0.5].map { f in
        intersectionNull(masks, layout: layout, kind: .heads, fraction: f, permutations: P, rng: &rng)
    }
    let oodMetric = settings.oodMetric ?? defaultOODMetric(matching)
    let f = settings.fraction
    return CoreEvidence(
        report: findCore(matching, layout: layout, fraction: f, metric: oodMetric), selection: selection,
        rule: rule, excluded: excluded,
        headNull: intersectionNull(masks, layout: layout, kind: .heads, fraction: f, permutations: P, rng: &rng),
        mlpNull: intersectionNull(masks, layout: layout, kind: .mlps, fraction: f, permutations: P, rng: &rng),
        sweep: sweep,
        splitHalf: splitHalf(masks, layout: layout, fraction: f, splits: settings.splits, rng: &rng),
        permutations: P, seed: settings.seed,
        presence: oodMetric.map { presenceStatistics(matching, metric: $0, permutations: P, seed: settings.seed) }
            ?? [])
}

/// Which units a null counts.
enum UnitKind { case heads, mlps }

/// The units of `kind` kept by ≥ `fraction` of `masks` (store order: heads, then MLPs).
func coreUnits(_ masks: [[Bool]], layout: StoreLayout, kind: UnitKind, fraction: Double) -> [Int] {
    let LH = layout.layers * layout.heads
    let range = kind == .heads ? 0..<LH : LH..<layout.unitCount
    let need = Int((fraction * Double(masks.count) - 1e-9).rounded(.up))
    return range.filter { u in masks.reduce(0) { $0 + ($1[u] ? 1 : 0) } >= need }
}

/// Each mask with its heads shuffled within every layer (kind .heads) or its MLPs across layers (.mlps).
func shuffled(_ masks: [[Bool]], layout: StoreLayout, kind: UnitKind, rng: inout SplitMix64) -> [[Bool]] {
    let (L, H) = (layout.layers, layout.heads)
    return masks.map { m -> [Bool] in
        var out = m
        switch kind {
        case .heads:
            for l in 0..<L {
                var row = Array(m[(l * H)..<((l + 1) * H)])
                rng.shuffle(&row)
                out.replaceSubrange((l * H)..<((l + 1) * H), with: row)
            }
        case .mlps:
            var mlps = Array(m[(L * H)...])
            rng.shuffle(&mlps)
            out.replaceSubrange((L * H)..., with: mlps)
        }
        return out
    }
}

/// The permutation null of the core's size, over the units of `kind` (see the file comment).
func intersectionNull(
    _ masks: [[Bool]], layout: StoreLayout, kind: UnitKind, fraction: Double, permutations: Int,
    rng: inout SplitMix64
) -> CoreEvidence.NullResult {
    let observed = coreUnits(masks, layout: layout, kind: kind, fraction: fraction).count
    var atLeast = 0
    var total = 0
    for _ in 0..<permutations {
        let size = coreUnits(
            shuffled(masks, layout: layout, kind: kind, rng: &rng), layout: layout, kind: kind, fraction: fraction
        ).count
        total += size
        if size >= observed { atLeast += 1 }
    }
    return .init(
        fraction: fraction, observed: observed,
        nullMean: permutations > 0 ? Double(total) / Double(permutations) : .nan,
        pValue: Double(1 + atLeast) / Double(1 + permutations))
}

/// Split-half reproducibility of the head core (see the file comment); NaN with fewer than 2 masks.
func splitHalf(_ masks: [[Bool]], layout: StoreLayout, fraction: Double, splits: Int, rng: inout SplitMix64)
    -> CoreEvidence.SplitHalf
{
    let n = masks.count
    guard n >= 2, splits > 0 else { return .init(splits: 0, jaccard: .nan, nullJaccard: .nan, halfCoreSize: .nan) }
    func jaccard(_ ms: [[Bool]], _ order: [Int]) -> (Double, Int) {
        let a = Set(coreUnits(order.prefix(n / 2).map { ms[$0] }, layout: layout, kind: .heads, fraction: fraction))
        let b = Set(coreUnits(order.dropFirst(n / 2).map { ms[$0] }, layout: layout, kind: .heads, fraction: fraction))
        let union = a.union(b).count
        return (union == 0 ? 1 : Double(a.intersection(b).count) / Double(union), a.count + b.count)
    }
    var (j, jNull, size) = (0.0, 0.0, 0)
    for _ in 0..<splits {
        var order = Array(0..<n)
        rng.shuffle(&order)
        let (observed, sizes) = jaccard(masks, order)
        j += observed
        size += sizes
        jNull += jaccard(shuffled(masks, layout: layout, kind: .heads, rng: &rng), order).0
    }
    let S = Double(splits)
    return .init(splits: splits, jaccard: j / S, nullJaccard: jNull / S, halfCoreSize: Double(size) / (2 * S))
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
            ("selection", .string(selection)),
            (
                "rule",
                rule.map {
                    .object([
                        ("metric", .string($0.metric)), ("full_model", .float($0.full)), ("margin", .float($0.margin)),
                        ("comparison", "accuracy > full_model - margin"), ("minimum", .int($0.minimumCount)),
                    ])
                } ?? .null
            ),
            ("excluded", .array(excluded.map { .string($0) })),
            ("head_null", n(headNull)), ("mlp_null", n(mlpNull)), ("head_sweep", .array(sweep.map(n))),
            (
                "split_half",
                .object([
                    ("splits", .int(splitHalf.splits)), ("jaccard", .float(splitHalf.jaccard)),
                    ("null_jaccard", .float(splitHalf.nullJaccard)), ("half_core_size", .float(splitHalf.halfCoreSize)),
                ])
            ),
            ("permutations", .int(permutations)), ("seed", .unsigned(seed)),
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

    /// The null of one kind of unit, in words.
    func nullLine(_ r: NullResult, what: String, shuffle: String) -> String {
        String(
            format:
                "%@: %d kept in common; masks with the same %@ share %.1f (%d permutations, seed %d): p = %.4f",
            what, r.observed, shuffle, r.nullMean, permutations, seed, r.pValue)
    }

    public var table: [String] {
        // The plain correlation line of CoreReport.table is replaced by the partialled statistics below.
        var lines = ["subnetworks: \(selection)"] + report.table.filter { !$0.hasPrefix("units whose presence tracks") }
        lines.append(nullLine(headNull, what: "heads", shuffle: "number of heads kept per layer"))
        lines.append(nullLine(mlpNull, what: "MLPs", shuffle: "number of MLPs kept, placed in random layers"))
        if splitHalf.splits > 0 {
            lines.append(
                String(
                    format:
                        "split halves (%d random splits of the seeds): the two halves' head cores overlap with Jaccard %.2f (permuted masks: %.2f); a half's core holds %.1f heads, the whole set's %d",
                    splitHalf.splits, splitHalf.jaccard, splitHalf.nullJaccard, splitHalf.halfCoreSize,
                    headNull.observed))
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
            "head-core fraction sweep: "
                + sweep.map {
                    String(format: "%.1f → %d (null %.1f, p %.3f)", $0.fraction, $0.observed, $0.nullMean, $0.pValue)
                }.joined(separator: "; "))
        return lines
    }
}

/// The stored in-domain metric when there is exactly one candidate: an eval/ key that is not HANS or PAWS.
public func defaultInDomainMetric(_ subs: [StoredSubnetwork]) -> String? {
    let candidates = evalKeys(subs).filter { k in
        !["hans", "paws"].contains { k.lowercased().contains($0) } && !k.dropFirst(5).contains("/")
    }
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
    let q = benjaminiHochberg(out.map(\.p))
    for i in out.indices { out[i].q = q[i] }
    return out
}

/// The paper's OOD measure when the store has it: the mean accuracy on its four plotted HANS subcases
/// (eval/<hans key>/plotted, which `hcore eval --write-back` writes when a HANS set holds all four). With
/// several HANS sets holding them, the one named `…plotted…` is taken, else none (name it with --metric).
public func defaultOODMetric(_ subs: [StoredSubnetwork]) -> String? {
    let keys = evalKeys(subs).filter { $0.lowercased().contains("hans") && $0.hasSuffix("/plotted") }
    if keys.count == 1 { return keys.first }
    let named = keys.filter { $0.dropLast("/plotted".count).contains("plotted") }
    return named.count == 1 ? named.first : nil
}
