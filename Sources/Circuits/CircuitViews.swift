// What `hcore circuits` prints and draws from a core or a composition analysis:
// tables for people, CSV for spreadsheets, SVG heatmaps and DOT graphs. The analyses themselves live in
// Core.swift and Composition.swift.
import Checkpoint
import Failures
import Foundation
import Model

extension CoreReport {
    /// The core's heads (its MLPs left out), as the reads and composition analyses take them.
    public var coreHeads: [(layer: Int, head: Int)] {
        core.compactMap { u in name(u).head.map { (name(u).layer, $0) } }
    }

    /// One line for the core, one per layer of keep frequencies, and with a metric its ten most correlated units.
    public var table: [String] {
        let L = layout.layers
        let H = layout.heads
        var lines = [
            "core (kept by ≥ \(fraction * 100)% of \(subnetworks.count) subnetworks): \(core.map { name($0).description }.joined(separator: " "))"
        ]
        for l in 0..<L {
            let row = (0..<H).map { fmt4(keepFrequency[l * H + $0]) }.joined(separator: " ")
            lines.append("layer \(l): \(row)   mlp \(fmt4(keepFrequency[L * H + l]))")
        }
        if let metric {
            let ranked = correlation.indices.compactMap { u in correlation[u].map { (u, $0) } }.sorted {
                abs($0.1) > abs($1.1)
            }.prefix(10)
            lines.append(
                "units whose presence tracks \(metric) most: "
                    + ranked.map { "\(name($0.0)) \(signed2($0.1))" }.joined(separator: ", "))
        }
        return lines
    }

    /// Keep frequencies as a heatmap, the core outlined.
    public var svg: String {
        let H = layout.heads
        let LH = layout.layers * H
        return svgHeatmap(
            title: "Keep frequency over \(subnetworks.count) subnetworks", layers: layout.layers, heads: H,
            values: { keepFrequency[$0 * H + $1] }, mlp: { keepFrequency[LH + $0] },
            highlight: Set(core.map { name($0).description }), legend: "fraction of subnetworks keeping the unit")
    }
}

/// Core heads written as `layer.head` (or any PrunableUnit spelling: a4.h3, L4H3, 4:3), space- or comma-separated.
public func parseCoreHeads(_ text: String, layers: Int, heads: Int) throws -> [(layer: Int, head: Int)] {
    let units = try parseSenders(text, layers: layers, heads: heads)
    guard units.mlps.isEmpty else { throw SettingError("core", "takes heads only here, not MLPs") }
    return units.heads
}

/// Heads and MLPs (a2.mlp), space- or comma-separated, in any PrunableUnit spelling.
public func parseSenders(_ text: String, layers: Int, heads: Int) throws -> PatchSenders {
    var out = PatchSenders(heads: [], mlps: [])
    for item in text.split(whereSeparator: { $0 == " " || $0 == "," }) {
        guard let u = PrunableUnit(String(item)), (0..<layers).contains(u.layer) else {
            throw SettingError("core", "'\(item)' is not a unit (layer.head or aL.mlp) within \(layers)×\(heads)")
        }
        if let h = u.head {
            guard (0..<heads).contains(h) else {
                throw SettingError("core", "'\(item)' is not a head within \(layers)×\(heads)")
            }
            out.heads.append((u.layer, h))
        } else {
            out.mlps.append(u.layer)
        }
    }
    return out
}

extension CompositionReport {
    /// Every pair's Q/K/V composition scores for `model`, with a random baseline.
    public init(model: BertModel, foldLayerNorm: Bool) {
        self.init(
            scores: composition(
                factors: headFactors(model: model), hidden: model.hidden, headDim: model.headDim,
                fold: foldLayerNorm ? { skipPathGains(model: model, from: $0, to: $1) } : nil),
            baseline: compositionBaseline(hidden: model.hidden, headDim: model.headDim), foldLayerNorm: foldLayerNorm)
    }

    /// Scores whose reading head is fed by `core` (all scores when the core is empty).
    func fromCore(_ core: Set<String>) -> [CompositionScore] {
        core.isEmpty ? scores : scores.filter { core.contains(headName($0.from)) }
    }

    /// Every score with its percentile in the anti-causal null of its layer pair; with a core, each outside
    /// receiver's strongest composition with it against its own null (random non-core senders of the core's
    /// layers, `conditionedReceivers`) and the core → core edges apart.
    public func json(core heads: [(layer: Int, head: Int)], layers L: Int, heads H: Int, null: CompositionNull)
        -> JSONValue
    {
        let core = Set(heads.map { headName($0) })
        func pct(_ s: CompositionScore) -> JSONValue {
            .array(
                (0..<3).map {
                    .float(null.percentile([s.q, s.k, s.v][$0], from: s.from.layer, to: s.to.layer, kind: $0))
                })
        }
        var fields: [(String, JSONValue)] = [
            (
                "scores",
                .array(
                    scores.map { s in
                        .object([
                            ("from", [.int(s.from.layer), .int(s.from.head)]),
                            ("to", [.int(s.to.layer), .int(s.to.head)]),
                            ("q", .float(s.q)), ("k", .float(s.k)), ("v", .float(s.v)), ("null_percentile_qkv", pct(s)),
                        ])
                    })
            ),
            ("null", .string("anti-causal pairs of the same two layers (a later head 'writing' into an earlier one)")),
            (
                "gaussian_baseline",
                .object([("q", .float(baseline.q)), ("k", .float(baseline.k)), ("v", .float(baseline.v))])
            ),
            (
                "fold_layernorm",
                .string(
                    foldLayerNorm
                        ? "exact along the skip path: every LayerNorm's centring and gain between the two heads (σ cancels; β is a constant no head writes)"
                        : "none")
            ),
            ("core", .array(core.sorted().map { .string($0) })),
        ]
        if !core.isEmpty {
            fields.append(
                (
                    "core_receivers",
                    .array(
                        conditionedReceivers(core: heads, layers: L, heads: H).map { r in
                            .object([
                                ("head", .string(headName(r.head))), ("max_qkv", .array(r.best.map { .float($0) })),
                                ("null_median_qkv", .array(r.nullMedian.map { .float($0) })),
                                ("p_qkv", .array(r.p.map { .float($0) })), ("q_qkv", .array(r.q.map { .float($0) })),
                            ])
                        })
                ))
            fields.append(
                (
                    "core_receivers_null",
                    .string(
                        "per receiver: its strongest composition with sender sets drawn outside the core from the core's layers (as many per layer), 1000 draws; q: Benjamini–Hochberg over receivers and kinds"
                    )
                ))
            fields.append(
                (
                    "core_edges",
                    .array(
                        coreEdges(core: core, null: null).map { e in
                            .object([
                                ("from", .string(headName(e.score.from))), ("to", .string(headName(e.score.to))),
                                ("qkv", .array([e.score.q, e.score.k, e.score.v].map { .float($0) })),
                                ("null_percentile_qkv", .array(e.percentile.map { .float($0) })),
                            ])
                        })
                ))
        }
        return .object(fields)
    }

    public var csv: String {
        var rows = ["from_layer,from_head,to_layer,to_head,q,k,v"]
        for s in scores {
            rows.append("\(s.from.layer),\(s.from.head),\(s.to.layer),\(s.to.head),\(s.q),\(s.k),\(s.v)")
        }
        return rows.joined(separator: "\n") + "\n"
    }

    /// Each head's strongest composition with the core (or with any earlier head when the core is empty).
    public func svg(core: Set<String>, layers: Int, heads: Int) -> String {
        var best = [String: Double]()
        for s in fromCore(core) { best[headName(s.to)] = max(best[headName(s.to)] ?? 0, s.q, s.k, s.v) }
        let legend =
            "max of Q/K/V scores; random baseline Q \(fmt3(baseline.q)) K \(fmt3(baseline.k)) V \(fmt3(baseline.v))"
        return svgHeatmap(
            title: core.isEmpty ? "Strongest composition with any earlier head" : "Strongest composition with the core",
            layers: layers, heads: heads, values: { best[PrunableUnit.head($0, $1).description] }, highlight: core,
            maxValue: max(0.1, best.values.max() ?? 0.1), legend: legend)
    }

    /// The `top` strongest core → head edges as a DOT graph.
    public func dot(core: Set<String>, top: Int) -> String {
        let edges = fromCore(core).flatMap { s in [("Q", s.q), ("K", s.k), ("V", s.v)].map { (s, $0.0, $0.1) } }
            .sorted { $0.2 > $1.2 }.prefix(top)
            .map { (from: headName($0.0.from), to: headName($0.0.to), label: "\($0.1) \(fmt2($0.2))", weight: $0.2) }
        return dotGraph(name: "composition", edges: Array(edges), core: core)
    }
}

func headName(_ p: (layer: Int, head: Int)) -> String { PrunableUnit.head(p.layer, p.head).description }
private func fixed(_ x: Double, _ digits: Int) -> String { String(format: "%.\(digits)f", x) }
private func fmt2(_ x: Double) -> String { fixed(x, 2) }
private func fmt3(_ x: Double) -> String { fixed(x, 3) }
private func fmt4(_ x: Double) -> String { fixed(x, 4) }
private func fmt5(_ x: Double) -> String { fixed(x, 5) }
private func signed2(_ x: Double) -> String { String(format: "%+.2f", x) }
