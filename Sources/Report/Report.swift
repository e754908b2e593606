// `hcore report`: what happened, for people. From an eval document (`hcore eval --store … --include-full
// --per-example`), the store and the model it measures the paper's phenomenon and writes SVG figures and an
// index.html (no JavaScript):
//   id-vs-ood.svg          in-domain accuracy vs the verdict's OOD measure per subnetwork, entailed accuracy beside
//   accuracy-sparsity.svg  in-domain accuracy, the OOD measure and entailed accuracy against sparsity
//   subnetworks-vplot.svg  the paper's violins of the matching subnetworks
//   keep-frequency.svg     how often each head / MLP is kept by the matching subnetworks, the core outlined
//   composition.svg        each head's strongest Q/K/V composition with the core's heads
// The OOD measure is the paper's: the mean accuracy on its four plotted HANS subcases (SO-Swap, Prep,
// Embed-If, Embed-Verb), from the HANS set of the document holding the most of their pairs. Matching is
// `MatchRule` (accuracy > full − 3 points); the core is `heuristicCore`, the very function `circuits core`
// runs; the verdict is `Verdict.decide` over `spanStatistics` and `leanStatistics`.
import Checkpoint
import Circuits
import Eval
import Failures
import Foundation
import Kernels
import Model
import Store
import Tokenizer

public struct Outcome: Sendable {
    public var name: String
    public var sparsity: Double
    /// The target sparsity it was pruned for, when the document records one.
    public var targetSparsity: Double?
    public var id: Double
    /// Accuracy on the document's HANS set (`oodKey`), and on its gold entailed / non-entailed pairs.
    public var ood: Double
    public var oodEntailed: Double?
    public var oodNonEntailed: Double?
    /// Mean accuracy on the paper's four plotted HANS subcases, and each of them (from `plottedKey`).
    public var plotted: Double?
    public var plottedSubcases: [(String, Double)] = []
    /// Share of in-domain examples on which it predicts what the full model predicts (needs per-example
    /// predictions).
    public var idAgreement: Double?
    /// HANS "heuristic/gold" cells.
    public var cells: [(String, Double)]

    /// The out-of-domain measure: the paper's (the four plotted subcases), else HANS non-entailment, else the
    /// OOD set's accuracy.
    public var oodMeasure: Double { plotted ?? oodNonEntailed ?? ood }
}

public struct ResearchReport {
    public var idKey: String, oodKey: String
    /// The HANS set the plotted measure comes from (nil: none holds all four subcases).
    public var plottedKey: String?
    public var full: Outcome?
    public var subnetworks: [Outcome]
    public var rule: MatchRule
    /// The subnetworks `rule` keeps.
    public var matching: [String]
    /// The core of the matching subnetworks, or why there is none (fewer than 3 match).
    public var coreEvidence: CoreEvidence?
    public var coreRefusal: String?
    public var span: SpanStatistics?
    public var lean: LeanStatistics?
    public var verdict: Verdict
    /// How many pairs the OOD measure rests on, per plotted subcase.
    public var plottedPairs: [(String, Int)]
    /// Which later heads read from the core (path patching against controls), when measured.
    public var readers: PatchReport?
    /// How often the configuration behind this run gives which verdict, measured elsewhere (the demo: its
    /// held-out base seeds), printed beside the verdict.
    public var record: String?
    /// Per head outside the core: 1 − p of its strongest composition with the core against its own null
    /// (`conditionedReceivers`: random non-core senders of the core's layers), LayerNorms folded exactly.
    public var composition: [String: Double]
    public var layers: Int, heads: Int

    /// What the OOD measure is, in words.
    public var oodMeasureName: String {
        guard let o = full ?? subnetworks.first else { return "\(oodKey) accuracy" }
        if o.plotted != nil {
            return o.plottedSubcases.count == 4
                ? "mean accuracy on the paper's four plotted HANS subcases"
                : "mean accuracy on \(o.plottedSubcases.count) of the paper's four plotted HANS subcases (\(o.plottedSubcases.map(\.0).joined(separator: ", ")))"
        }
        return o.oodNonEntailed != nil ? "HANS non-entailment accuracy" : "\(oodKey) accuracy"
    }

    public var matchingOutcomes: [Outcome] { subnetworks.filter { matching.contains($0.name) } }

    public var summary: String {
        var lines: [String] = []
        if let f = full {
            lines.append(
                "full model: \(idKey) \(pct(f.id)), \(oodMeasureName) \(pct(f.oodMeasure)), HANS entailed \(pct(f.oodEntailed))"
            )
        }
        for s in subnetworks {
            lines.append(
                "\(s.name): sparsity \(fmt(s.sparsity, 3))\(s.targetSparsity.map { " (target \(fmt($0, 2)))" } ?? ""), \(idKey) \(pct(s.id)) (agrees with the full model on \(pct(s.idAgreement))), OOD \(pct(s.oodMeasure)), entailed \(pct(s.oodEntailed))\(matching.contains(s.name) ? ", matches" : "")"
            )
        }
        lines.append(verdict.text)
        if let e = coreEvidence {
            lines.append(
                "core (kept by all \(e.report.subnetworks.count) matching subnetworks): "
                    + (e.report.core.isEmpty
                        ? "none" : e.report.core.map { e.report.name($0).description }.joined(separator: " "))
                    + String(
                        format:
                            "; heads: %d in common where same-shape random masks share %.1f (p = %.3f); MLPs: %d where they share %.1f (p = %.3f)",
                        e.headNull.observed, e.headNull.nullMean, e.headNull.pValue, e.mlpNull.observed,
                        e.mlpNull.nullMean, e.mlpNull.pValue))
        } else if let why = coreRefusal {
            lines.append("no core: \(why)")
        }
        if let r = readers { lines.append(r.summaryLine) }
        return lines.joined(separator: "\n")
    }
}

func fmt(_ x: Double, _ digits: Int) -> String { String(format: "%.\(digits)f", x) }
func pct(_ x: Double?) -> String { x.map { fmt($0 * 100, 1) } ?? "—" }

/// The datasets a report reads from an eval document.
struct ReportKeys {
    var id: String, ood: String, plotted: String?

    /// `id` / `ood` as given, else the first non-HANS set and the HANS set with the most subcases; the
    /// plotted measure from the HANS set holding the most pairs of the four plotted subcases.
    init(_ doc: EvalDocument, id idKey: String?, ood oodKey: String?) throws {
        let keys = doc.datasets.map(\.key)
        let hans = doc.datasets.filter { $0.format == "hans" }.map(\.key)
        let full = doc.results.first
        func subcases(_ k: String) -> [String: EvalDocument.Cell] { full?.metrics[k]?.hansSubcases ?? [:] }
        guard keys.count >= 2 else {
            throw ModelError.badInput(
                "the eval document needs an in-domain and an out-of-domain dataset; it has \(keys)")
        }
        let ood = oodKey ?? hans.max { subcases($0).count < subcases($1).count } ?? keys[1]
        let id = idKey ?? keys.first { k in !hans.contains(k) && k != ood } ?? keys.first { $0 != ood }!
        (self.id, self.ood) = (id, ood)
        for k in [id, ood] where !keys.contains(k) {
            throw ModelError.badInput("the eval document has no dataset '\(k)' (it has \(keys))")
        }
        let holding = hans.filter { k in plottedHANSSubcases.allSatisfy { subcases(k)[$0] != nil } }
        plotted = holding.max { a, b in
            plottedHANSSubcases.reduce(0) { $0 + (subcases(a)[$1]?.count ?? 0) }
                < plottedHANSSubcases.reduce(0) { $0 + (subcases(b)[$1]?.count ?? 0) }
        }
    }
}

/// One result of an eval document (nil when it lacks a chosen dataset).
func outcome(_ r: EvalDocument.Result, keys: ReportKeys) -> Outcome? {
    guard let id = r.metrics[keys.id], let ood = r.metrics[keys.ood] else { return nil }
    let cells = (ood.hansCells ?? [:]).sorted { $0.key < $1.key }.map { ($0.key, $0.value.accuracy) }
    let isHANS = ood.hansCells != nil
    let source = keys.plotted.flatMap { r.metrics[$0] }
    let plotted = plottedHANSSubcases.compactMap { c in source?.hansSubcases?[c].map { (c, $0.accuracy) } }
    return Outcome(
        name: r.subnetwork, sparsity: r.sparsity, targetSparsity: r.targetSparsity, id: id.accuracy,
        ood: ood.accuracy,
        oodEntailed: isHANS ? ood.accuracy(onGold: "entailment") : nil,
        oodNonEntailed: isHANS ? ood.accuracy(onGold: "non-entailment") : nil,
        plotted: plotted.isEmpty ? nil : plotted.map(\.1).reduce(0, +) / Double(plotted.count),
        plottedSubcases: plotted, cells: cells)
}

/// How the report is asked for: the datasets, the matching margin and the statistics' settings.
public struct ReportSettings: Sendable {
    public var idKey: String?, oodKey: String?
    public var margin = MatchRule.referenceMargin
    public var core = CoreSettings()
    public var bootstraps = 2000, noisePermutations = 2000
    public var seed: UInt64 = 0
    public init() {}
}

/// Builds the report (see the file comment); `measureReaders` adds the readers.
public func buildReport(
    evalDocument doc: EvalDocument, store: SubnetworkStore, model: BertModel,
    settings: ReportSettings = ReportSettings(), warn: (String) -> Void
) throws -> ResearchReport {
    if doc.fingerprint != model.fingerprint {
        throw ModelError.mismatch(
            "the eval document was computed for model \(doc.fingerprint), not \(model.folder) (\(model.fingerprint))")
    }
    let keys = try ReportKeys(doc, id: settings.idKey, ood: settings.oodKey)
    var outcomes = doc.results.compactMap { outcome($0, keys: keys) }
    guard let full = outcomes.first(where: { $0.name == "full" }) else {
        throw ModelError.badInput(
            "the eval document has no full-model row to match against: evaluate with the full model included")
    }
    let pairs = try PerPairData(doc, keys: keys, model: model, warn: warn)
    for i in outcomes.indices { outcomes[i].idAgreement = pairs?.agreement(outcomes[i].name) }
    let subs = outcomes.filter { $0.name != "full" }
    let rule = try MatchRule(metric: keys.id, full: full.id, margin: settings.margin)
    let matching = subs.filter { rule.matches($0.id) }
    let byName = Dictionary(store.subnetworks.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
    var evidence: CoreEvidence? = nil
    var refusal: String? = nil
    do {
        let scored = try subs.map { o -> ScoredSubnetwork in
            guard let s = byName[o.name] else {
                throw ModelError.badInput("subnetwork '\(o.name)' of the eval document is not in \(store.path)")
            }
            return ScoredSubnetwork(s, inDomain: o.id)
        }
        evidence = try heuristicCore(scored, rule: rule, layout: store.layout, settings: settings.core)
    } catch let e as SettingError { refusal = e.problem }
    let measures = matching.map(\.oodMeasure)
    let table = try pairs?.table(matching.map(\.name))
    let span = table.map {
        spanStatistics(
            $0, bootstraps: settings.bootstraps, permutations: settings.noisePermutations, seed: settings.seed)
    }
    let lean: LeanStatistics? =
        matching.allSatisfy({ $0.oodEntailed != nil })
        ? leanStatistics(measure: measures, inDomain: matching.map(\.id), entailed: matching.map { $0.oodEntailed! })
        : nil
    var report = ResearchReport(
        idKey: keys.id, oodKey: keys.ood, plottedKey: keys.plotted, full: full, subnetworks: subs, rule: rule,
        matching: matching.map(\.name), coreEvidence: evidence, coreRefusal: refusal, span: span, lean: lean,
        verdict: Verdict(outcome: .inconclusive, decidedBy: "", text: ""), plottedPairs: pairs?.groupSizes ?? [],
        readers: nil, composition: [:], layers: model.layerCount,
        heads: model.headCount)
    report.verdict = Verdict.decide(
        measures: measures, matchWords: rule.words, measureName: report.oodMeasureName, span: span, lean: lean)
    report.composition = coreComposition(model: model, core: evidence?.coreHeads ?? [])
    return report
}

/// Each head's 1 − p of its strongest Q/K/V composition with the core's heads against its own null (the
/// smallest p of the three kinds), LayerNorms folded exactly along the skip path.
func coreComposition(model: BertModel, core: [(layer: Int, head: Int)]) -> [String: Double] {
    guard !core.isEmpty else { return [:] }
    let report = CompositionReport(model: model, foldLayerNorm: true)
    var out: [String: Double] = [:]
    for r in report.conditionedReceivers(core: core, layers: model.layerCount, heads: model.headCount) {
        out[PrunableUnit.head(r.head.layer, r.head.head).description] = 1 - (r.p.min() ?? 1)
    }
    return out
}

extension ResearchReport {
    /// Which later heads read from the core (`patchReport`): its heads and MLPs mean-ablated as senders, on
    /// `perSubcase` pairs of each plotted subcase of `examples` (seeded), against `controls` control sets.
    public mutating func measureReaders(
        model: BertModel, activations: MeanActivations, examples: [Example], encodings: [Encoding],
        perSubcase: Int = 25, controls: Int = 20, seed: UInt64 = 0, progress: ((String) -> Void)? = nil
    ) throws {
        guard let e = coreEvidence, !(e.coreHeads.isEmpty && e.coreMLPs.isEmpty) else { return }
        let picked = perStratumSample(examples, perStratum: perSubcase, strata: plottedHANSSubcases, seed: seed)
        guard !picked.isEmpty else { return }
        readers = try patchReport(
            model: model, examples: picked.map { examples[$0] }, encodings: picked.map { encodings[$0] },
            senders: PatchSenders(heads: e.coreHeads, mlps: e.coreMLPs), corruption: .mean(activations),
            controls: controls, seed: seed,
            sample: "\(picked.count) pairs: \(perSubcase) per plotted subcase, drawn with seed \(seed)",
            progress: progress)
    }
}
