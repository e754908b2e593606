// `hcore report`: what happened, for people. From an eval document (`hcore eval --store … --include-full`),
// the store and the model it writes SVG figures a paper would use and an index.html (no JavaScript):
//   id-vs-ood.svg          in-domain accuracy vs HANS non-entailment accuracy per subnetwork, full model marked
//   accuracy-sparsity.svg  in-domain and OOD accuracy against sparsity
//   keep-frequency.svg     how often each head / MLP is kept by the subnetworks that match the model in-domain,
//                          the core outlined
//   composition.svg        each head's strongest Q/K/V composition with the core's heads
// and states the outcome plainly: the full model's HANS cells, each subnetwork's ID/OOD, the paper's measure —
// the spread of the mean accuracy on its four plotted HANS subcases among subnetworks within 3 points of the
// full model in-domain (the reference's effective-size margin) — the core, and who reads it.
import Checkpoint
import Circuits
import Eval
import Foundation
import Kernels
import Model
import Store
import Tokenizer

public struct Outcome: Sendable {
    public var name: String
    public var sparsity: Double
    public var id: Double
    public var ood: Double
    /// HANS accuracy on gold entailment / non-entailment pairs (nil when OOD is not HANS).
    public var oodEntailed: Double?
    public var oodNonEntailed: Double?
    /// Mean accuracy on the paper's four plotted HANS subcases (those present), and each of them.
    public var plotted: Double?
    public var plottedSubcases: [(String, Double)] = []
    /// HANS "heuristic/gold" cells.
    public var cells: [(String, Double)]

    /// The out-of-domain measure the verdict uses: the paper's (the four plotted subcases), else HANS
    /// non-entailment, else the OOD set's accuracy.
    public var oodMeasure: Double { plotted ?? oodNonEntailed ?? ood }
}

public struct ResearchReport {
    public var idKey: String, oodKey: String
    public var full: Outcome?
    public var subnetworks: [Outcome]
    /// Subnetworks within `matchPoints` of the full model in-domain (all of them if there is no full model).
    public var matching: [String]
    public var matchPoints: Double
    public var core: CoreReport
    /// The core with its evidence: the permutation null of its size and each member's bootstrap stability.
    public var coreEvidence: CoreEvidence
    public var reads: ReadsReport?
    public var composition: [String: Double]
    public var compositionBaseline: (q: Double, k: Double, v: Double)
    public var layers: Int, heads: Int

    /// Whether the core was computed over the matching subnetworks (else over all, since < 2 matched).
    public var coreOverMatching: Bool { matching.count >= 2 }

    /// The OOD measure (`Outcome.oodMeasure`) among matching subnetworks: (min, max) in points, nil with fewer than 2.
    public var spread: (low: Double, high: Double)? {
        let xs = matchingMeasures
        guard xs.count >= 2 else { return nil }
        return (xs.min()!, xs.max()!)
    }

    /// What `spread` measures, in words.
    public var oodMeasureName: String {
        let o = full ?? subnetworks.first
        if let o, o.plotted != nil {
            return o.plottedSubcases.count == 4
                ? "mean accuracy on the paper's four plotted HANS subcases (SO-Swap, Prep, Embed-If, Embed-Verb)"
                : "mean accuracy on \(o.plottedSubcases.count) of the paper's four plotted HANS subcases (\(o.plottedSubcases.map(\.0).joined(separator: ", ")))"
        }
        return o?.oodNonEntailed != nil ? "HANS non-entailment accuracy" : "\(oodKey) accuracy"
    }

    /// The bar the verdict holds the run to: at least this many subnetworks within `matchPoints` of the full
    /// model in-domain whose OOD measure spans at least `shownPoints` (the paper: ~25 points among 12
    /// bert-base subnetworks at 50% sparsity).
    public static let shownMatching = 6, shownPoints = 15.0

    /// The honest verdict on the paper's phenomenon, in plain words, with the bar it was held to.
    public var verdict: String {
        Self.verdict(matchingMeasures: matchingMeasures, matchPoints: matchPoints, measure: oodMeasureName)
    }

    /// The OOD measure, in points, of each subnetwork within `matchPoints` in-domain.
    var matchingMeasures: [Double] { subnetworks.filter { matching.contains($0.name) }.map { $0.oodMeasure * 100 } }

    /// The verdict from the OOD measure (in points) of the subnetworks within `matchPoints` in-domain.
    public static func verdict(matchingMeasures xs: [Double], matchPoints: Double, measure what: String) -> String {
        let margin = String(format: "%g", matchPoints)
        let bar =
            "the bar: ≥ \(shownMatching) such subnetworks spanning ≥ \(fmt(shownPoints, 0)) points; the paper's 12 bert-base subnetworks span ~25"
        guard xs.count >= 2, let low = xs.min(), let high = xs.max() else {
            return
                "The paper's phenomenon is NOT shown here: fewer than two subnetworks are within \(margin) points of the full model in-domain, so the spread of OOD accuracy among matching subnetworks cannot be measured (\(bar))."
        }
        let d = high - low
        if d >= shownPoints && xs.count >= shownMatching {
            return
                "The paper's phenomenon is shown: \(xs.count) subnetworks are within \(margin) points of the full model in-domain, and their \(what) ranges from \(fmt(low, 1)) to \(fmt(high, 1)) (\(fmt(d, 1)) points; \(bar))."
        }
        return
            "The paper's phenomenon is NOT shown here: the \(xs.count) subnetworks within \(margin) points of the full model in-domain span \(fmt(d, 1)) points in \(what) (from \(fmt(low, 1)) to \(fmt(high, 1)); \(bar))."
    }

    public var summary: String {
        var lines: [String] = []
        if let f = full {
            var l = "full model: \(idKey) \(fmt(f.id * 100, 1)), \(oodKey) \(fmt(f.ood * 100, 1))"
            if let e = f.oodEntailed, let n = f.oodNonEntailed {
                l += " (entailed \(fmt(e * 100, 1)), non-entailed \(fmt(n * 100, 1)))"
            }
            lines.append(l)
        }
        for s in subnetworks {
            var l =
                "\(s.name): sparsity \(fmt(s.sparsity, 2)), \(idKey) \(fmt(s.id * 100, 1)), \(oodKey) \(fmt(s.ood * 100, 1))"
            if let n = s.oodNonEntailed { l += " (non-entailed \(fmt(n * 100, 1)))" }
            lines.append(l)
        }
        lines.append(verdict)
        lines.append(
            "core (kept by all \(core.subnetworks.count) \(coreOverMatching ? "matching " : "")subnetworks): "
                + (core.core.isEmpty ? "none" : core.core.map { core.name($0).description }.joined(separator: " "))
                + String(
                    format: "; same-shape random masks share %.1f units (permutation null, p = %.3f)",
                    coreEvidence.null.nullMean, coreEvidence.null.pValue))
        if let r = reads, let top = r.reads.first {
            lines.append(
                "strongest reader of the core: \(PrunableUnit.head(top.layer, top.head)) (Δoutput \(fmt(top.dout, 3)) when the core is mean-ablated)"
            )
        }
        return lines.joined(separator: "\n")
    }
}

func fmt(_ x: Double, _ digits: Int) -> String { String(format: "%.\(digits)f", x) }

/// One result of an eval document on the chosen datasets (nil when it lacks either).
func outcome(_ r: EvalDocument.Result, idKey: String, oodKey: String) -> Outcome? {
    guard let id = r.metrics[idKey], let ood = r.metrics[oodKey] else { return nil }
    let cells = (ood.hansCells ?? [:]).sorted { $0.key < $1.key }.map { ($0.key, $0.value.accuracy) }
    let isHANS = ood.hansCells != nil
    let plotted = plottedHANSSubcases.compactMap { c in ood.hansSubcases?[c].map { (c, $0.accuracy) } }
    return Outcome(
        name: r.subnetwork, sparsity: r.sparsity, id: id.accuracy, ood: ood.accuracy,
        oodEntailed: isHANS ? ood.accuracy(onGold: "entailment") : nil,
        oodNonEntailed: isHANS ? ood.accuracy(onGold: "non-entailment") : nil,
        plotted: plotted.isEmpty ? nil : plotted.map(\.1).reduce(0, +) / Double(plotted.count),
        plottedSubcases: plotted, cells: cells)
}

/// Builds the report. `idKey` / `oodKey` name datasets of the eval document (default: the first non-HANS
/// dataset and HANS); `oodEncodings` (with activations) lets it measure which heads read from the core.
public func buildReport(
    evalDocument doc: EvalDocument, store: SubnetworkStore, model: BertModel, activations: MeanActivations?,
    oodEncodings: [Encoding]?, idKey: String? = nil, oodKey: String? = nil, matchPoints: Double = 3,
    readsExamples: Int = 500
) throws -> ResearchReport {
    if doc.fingerprint != model.fingerprint {
        throw ModelError.mismatch(
            "the eval document was computed for model \(doc.fingerprint), not \(model.folder) (\(model.fingerprint))")
    }
    let keys = doc.datasets.map(\.key)
    guard keys.count >= 2 else {
        throw ModelError.badInput("the eval document needs an in-domain and an out-of-domain dataset; it has \(keys)")
    }
    let ood = oodKey ?? (doc.datasets.first { $0.format == "hans" }?.key ?? keys[1])
    let id = idKey ?? keys.first { $0 != ood }!
    for k in [id, ood] where !keys.contains(k) {
        throw ModelError.badInput("the eval document has no dataset '\(k)' (it has \(keys))")
    }
    let outcomes = doc.results.compactMap { outcome($0, idKey: id, oodKey: ood) }
    let full = outcomes.first { $0.name == "full" }
    let subs = outcomes.filter { $0.name != "full" }
    let matching = subs.filter { o in full.map { abs(o.id - $0.id) * 100 <= matchPoints } ?? true }.map(\.name)
    // The core over the subnetworks that match the model in-domain — or over all of them when fewer than
    // two match (the report says which).
    let basis = matching.count >= 2 ? matching : subs.map(\.name)
    var evidence = try heuristicCore(
        store.subnetworks.filter { basis.contains($0.name) }, layout: store.layout, rule: nil, bootstraps: 200)
    evidence.selection =
        matching.count >= 2
        ? "the \(matching.count) subnetworks within \(matchPoints) points of the full model on \(id) (eval document)"
        : "all \(subs.count) subnetworks (fewer than 2 within \(matchPoints) points of the full model on \(id))"
    let core = evidence.report
    let coreHeads = core.core.compactMap { u in core.name(u).head.map { (layer: core.name(u).layer, head: $0) } }

    var reads: ReadsReport? = nil
    if let activations, let enc = oodEncodings, !coreHeads.isEmpty {
        let sample = Array(enc.prefix(readsExamples))
        let batches = lengthSortedBatches(sample, batchSize: 32).map { TokenBatch($0.map { sample[$0] }) }
        reads = try coreReads(model: model, batches: batches, core: coreHeads, activations: activations)
    }
    let scores = composition(factors: headFactors(model: model), hidden: model.hidden, headDim: model.headDim)
    let coreNames = Set(coreHeads.map { PrunableUnit.head($0.layer, $0.head).description })
    var best: [String: Double] = [:]
    for s in scores where coreNames.contains(PrunableUnit.head(s.from.layer, s.from.head).description) {
        let to = PrunableUnit.head(s.to.layer, s.to.head).description
        best[to] = max(best[to] ?? 0, s.q, s.k, s.v)
    }
    return ResearchReport(
        idKey: id, oodKey: ood, full: full, subnetworks: subs, matching: matching, matchPoints: matchPoints, core: core,
        coreEvidence: evidence, reads: reads, composition: best,
        compositionBaseline: compositionBaseline(hidden: model.hidden, headDim: model.headDim),
        layers: model.layerCount, heads: model.headCount)
}
