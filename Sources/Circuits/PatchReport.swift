// Which heads read from the core, as `hcore circuits readers` (alias patch) answers it: path patching from the
// core's heads and MLPs to every later head's query, key and value and to the logits, on a seeded sample
// stratified by subcase, against control sender sets of non-core units.
//
//   Δ          mean change of the entailment log-odds per receiver (PathPatching.swift), with its standard
//              error over pairs, overall and per subcase
//   fraction   Δ over the senders' total effect (corrupted with nothing else frozen, the same LayerNorm rule):
//              the share of their whole effect that flows through the receiver
//   controls   `controls` sender sets like the core's: each core head replaced by a non-core head of its layer,
//              each core MLP by a non-core MLP (drawn at random, seeded); when too few non-core MLPs exist the
//              MLPs stay in every control set and the controls test the heads alone (said in `controlRule`)
//   p          two-sided, per receiver: Student's t prediction test of the core's Δ against the controls' Δs
//              (n − 1 degrees of freedom; assumes the controls' Δs are normal), and the rank p
//              (1 + #{|Δ_control| ≥ |Δ|}) / (1 + controls), exact but never below 1/(1 + controls)
//   q          Benjamini–Hochberg across receivers, of the t-test p
import Checkpoint
import Eval
import Failures
import Foundation
import Kernels
import Model
import Tokenizer

/// One receiver's effect and its tests.
public struct ReceiverStatistic: Sendable {
    public var receiver: PatchReceiver
    public var delta: Double, standardError: Double
    /// Δ / the senders' total effect (NaN when the total is 0).
    public var fraction: Double
    public var controlMean: Double, controlSD: Double
    public var pT: Double, pRank: Double, q: Double
}

public struct PatchReport: Sendable {
    public static let plottedSubcases = plottedHANSSubcases

    public var senders: PatchSenders
    public var effects: PatchEffects
    public var controls: [PatchEffects]
    public var controlSenders: [PatchSenders]
    public var controlRule: String
    /// Example indices per group ("all" first, then each subcase of the sample).
    public var groups: [(name: String, examples: [Int])]
    public var settings: PatchSettings
    public var seed: UInt64
    /// How the senders were corrupted, and how the pairs were chosen, in words.
    public var corruption: String
    public var sample: String
    public var statistics: [ReceiverStatistic] = []

    public var totalEffect: Double { mean(effects.total) }
    public var totalRecomputed: Double { mean(effects.totalRecomputed) }

    /// Computes `statistics` from the effects and the controls.
    mutating func computeStatistics() {
        let total = totalEffect
        var stats = effects.receivers.indices.map { r -> ReceiverStatistic in
            let xs = effects.deltas[r]
            let m = mean(xs)
            let se =
                xs.count > 1
                ? (xs.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(xs.count - 1) / Double(xs.count)).squareRoot()
                : .nan
            let c = controls.map { $0.mean(r) }
            let cm = mean(c)
            let sd =
                c.count > 1 ? (c.reduce(0) { $0 + ($1 - cm) * ($1 - cm) } / Double(c.count - 1)).squareRoot() : .nan
            return ReceiverStatistic(
                receiver: effects.receivers[r], delta: m, standardError: se, fraction: total != 0 ? m / total : .nan,
                controlMean: cm, controlSD: sd, pT: predictionTestP(m, controls: c),
                pRank: c.isEmpty ? .nan : Double(1 + c.filter { abs($0) >= abs(m) }.count) / Double(1 + c.count),
                q: .nan)
        }
        let q = benjaminiHochberg(stats.map(\.pT))
        for i in stats.indices { stats[i].q = q[i] }
        statistics = stats
    }
}

func mean(_ xs: [Double]) -> Double { xs.isEmpty ? .nan : xs.reduce(0, +) / Double(xs.count) }

/// Control sender sets like `senders` from units outside `core` (see the file comment), and the rule in words.
public func controlSenders(
    _ senders: PatchSenders, core: PatchSenders, layers L: Int, heads H: Int, count: Int, seed: UInt64
) -> (sets: [PatchSenders], rule: String) {
    var rng = SplitMix64(seed: seed)
    let coreHeads = Set(core.heads.map { $0.layer * H + $0.head })
    let coreMLPs = Set(core.mlps)
    let perLayer = Dictionary(grouping: senders.heads, by: \.layer).mapValues(\.count)
    let freeMLPs = (0..<L).filter { !coreMLPs.contains($0) }
    let swapMLPs = freeMLPs.count >= senders.mlps.count
    var short: [String] = []
    for (l, n) in perLayer.sorted(by: { $0.key < $1.key }) {
        let free = (0..<H).filter { !coreHeads.contains(l * H + $0) }.count
        if free < n { short.append("layer \(l) has \(free) non-core heads for \(n)") }
    }
    let sets = (0..<count).map { _ -> PatchSenders in
        let heads = perLayer.keys.sorted().flatMap { l -> [(layer: Int, head: Int)] in
            var free = (0..<H).filter { !coreHeads.contains(l * H + $0) }
            rng.shuffle(&free)
            return free.prefix(perLayer[l]!).map { (layer: l, head: $0) }
        }
        var mlps = freeMLPs
        rng.shuffle(&mlps)
        return PatchSenders(
            heads: heads, mlps: swapMLPs ? Array(mlps.prefix(senders.mlps.count)).sorted() : senders.mlps)
    }
    var rule = "each sender head replaced by a non-core head of its layer"
    rule +=
        senders.mlps.isEmpty
        ? ""
        : swapMLPs
            ? ", each sender MLP by a non-core MLP"
            : "; only \(freeMLPs.count) non-core MLPs for \(senders.mlps.count) sender MLPs, so the MLPs stay in every control set and the controls test the heads alone"
    if !short.isEmpty { rule += " (" + short.joined(separator: "; ") + ": those control sets are smaller)" }
    return (sets, rule + "; seeded")
}

/// Path patching of `senders` on `examples` (their subcases group the result), with `controls` control sender
/// sets drawn outside `core` (default: the senders themselves). Batches of 32 in the examples' order.
public func patchReport(
    model: BertModel, examples: [Example], encodings: [Encoding], senders: PatchSenders, core: PatchSenders? = nil,
    corruption source: PatchCorruptionSource, controls: Int, seed: UInt64, settings: PatchSettings = PatchSettings(),
    sample: String = "", progress: ((String) -> Void)? = nil
) throws -> PatchReport {
    guard !senders.isEmpty else { throw ModelError.badInput("no senders to patch") }
    let entailment = try entailmentIndex(model)
    let (kept, batches, corruption, description) = try prepareCorruption(
        source, examples: examples, encodings: encodings)
    let receivers = patchReceivers(senders: senders, layers: model.layerCount, heads: model.headCount)
    progress?("path patching: \(senders.names.count) senders, \(receivers.count) receivers, \(kept.count) pairs")
    func patch(_ s: PatchSenders, total: Bool) throws -> PatchEffects {
        var st = settings
        st.total = total
        return try pathPatch(
            model: model, batches: batches, senders: s, receivers: receivers, corruption: corruption,
            entailment: entailment, settings: st)
    }
    let effects = try patch(senders, total: true)
    let (sets, rule) = controlSenders(
        senders, core: core ?? senders, layers: model.layerCount, heads: model.headCount, count: controls, seed: seed)
    var controlEffects: [PatchEffects] = []
    for (k, s) in sets.enumerated() {
        progress?("control \(k + 1)/\(controls)")
        controlEffects.append(try patch(s, total: false))
    }
    var groups: [(name: String, examples: [Int])] = [("all", Array(kept.indices))]
    for s in Set(kept.map { stratum(examples[$0]) }).sorted() {
        groups.append((s, kept.indices.filter { stratum(examples[kept[$0]]) == s }))
    }
    var report = PatchReport(
        senders: senders, effects: effects, controls: controlEffects, controlSenders: sets, controlRule: rule,
        groups: groups, settings: settings, seed: seed, corruption: description, sample: sample)
    report.computeStatistics()
    return report
}

func entailmentIndex(_ model: BertModel) throws -> Int {
    guard let e = model.config.labels.map({ $0.lowercased() }).firstIndex(of: "entailment") else {
        throw ModelError.mismatch(
            "path patching measures the entailment log-odds: the model needs an 'entailment' label (it has \(model.config.labels))"
        )
    }
    return e
}
