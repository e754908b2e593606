// The report's files: SVG figures drawn by hand (no dependencies, any browser) and an index.html with the
// tables. Every figure states its axes and what the marks are.
import Checkpoint
import Circuits
import Eval
import Figures
import Foundation
import Model

/// One series of a scatter plot.
struct Series {
    var name: String
    var color: String
    var points: [(x: Double, y: Double, label: String)]
    var marker: String = "circle"  // circle, diamond, triangle
}

/// A scatter plot with axes, ticks, a legend and optional vertical band (e.g. "within 2 points of the full model").
func svgScatter(
    title: String, xLabel: String, yLabel: String, series: [Series], x: ClosedRange<Double>, y: ClosedRange<Double>,
    band: ClosedRange<Double>? = nil, bandLabel: String = ""
) -> String {
    // Room on the right for the longest legend entry, and for the title (0.6 em per character, generous).
    let right = max(170, 50 + 0.6 * 11 * Double(series.map(\.name.count).max() ?? 0))
    let left = 70.0
    let top = 50.0
    let bottom = 60.0
    let w = max(390 + right, left + 0.6 * 14 * Double(title.count) + 20)
    let h = 420.0
    let pw = w - left - right
    let ph = h - top - bottom
    func px(_ v: Double) -> Double { left + (v - x.lowerBound) / max(1e-9, x.upperBound - x.lowerBound) * pw }
    func py(_ v: Double) -> Double { top + ph - (v - y.lowerBound) / max(1e-9, y.upperBound - y.lowerBound) * ph }
    var s =
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(w))\" height=\"\(Int(h))\" viewBox=\"0 0 \(Int(w)) \(Int(h))\" font-family=\"Helvetica,Arial,sans-serif\" font-size=\"11\">\n"
    s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    s += "<text x=\"\(left)\" y=\"24\" font-size=\"14\" font-weight=\"bold\">\(escapeXML(title))</text>\n"
    if let b = band {
        let x0 = px(max(x.lowerBound, b.lowerBound))
        let x1 = px(min(x.upperBound, b.upperBound))
        s +=
            "<rect x=\"\(x0)\" y=\"\(top)\" width=\"\(max(0, x1 - x0))\" height=\"\(ph)\" fill=\"#fff3cd\"><title>\(escapeXML(bandLabel))</title></rect>\n"
        s +=
            "<text x=\"\(x0 + 3)\" y=\"\(top + 12)\" fill=\"#8a6d3b\" font-size=\"10\">\(escapeXML(bandLabel))</text>\n"
    }
    s += "<rect x=\"\(left)\" y=\"\(top)\" width=\"\(pw)\" height=\"\(ph)\" fill=\"none\" stroke=\"#333\"/>\n"
    for i in 0...5 {
        let vx = x.lowerBound + Double(i) / 5 * (x.upperBound - x.lowerBound)
        let vy = y.lowerBound + Double(i) / 5 * (y.upperBound - y.lowerBound)
        s += "<line x1=\"\(px(vx))\" y1=\"\(top + ph)\" x2=\"\(px(vx))\" y2=\"\(top + ph + 4)\" stroke=\"#333\"/>"
        s += "<text x=\"\(px(vx))\" y=\"\(top + ph + 16)\" text-anchor=\"middle\">\(fmt(vx, 2))</text>\n"
        s += "<line x1=\"\(left - 4)\" y1=\"\(py(vy))\" x2=\"\(left + pw)\" y2=\"\(py(vy))\" stroke=\"#eeeeee\"/>"
        s += "<text x=\"\(left - 7)\" y=\"\(py(vy) + 4)\" text-anchor=\"end\">\(fmt(vy, 2))</text>\n"
    }
    s += "<text x=\"\(left + pw / 2)\" y=\"\(h - 18)\" text-anchor=\"middle\">\(escapeXML(xLabel))</text>\n"
    s +=
        "<text x=\"18\" y=\"\(top + ph / 2)\" transform=\"rotate(-90 18 \(top + ph / 2))\" text-anchor=\"middle\">\(escapeXML(yLabel))</text>\n"
    func mark(_ m: String, _ cx: Double, _ cy: Double, _ color: String, _ tip: String) -> String {
        let title = "<title>\(escapeXML(tip))</title>"
        switch m {
        case "diamond":
            return
                "<polygon points=\"\(cx),\(cy - 7) \(cx + 7),\(cy) \(cx),\(cy + 7) \(cx - 7),\(cy)\" fill=\"\(color)\" stroke=\"black\">\(title)</polygon>\n"
        case "triangle":
            return
                "<polygon points=\"\(cx),\(cy - 6) \(cx + 6),\(cy + 5) \(cx - 6),\(cy + 5)\" fill=\"\(color)\" fill-opacity=\"0.8\">\(title)</polygon>\n"
        default:
            return
                "<circle cx=\"\(cx)\" cy=\"\(cy)\" r=\"5\" fill=\"\(color)\" fill-opacity=\"0.75\">\(title)</circle>\n"
        }
    }
    for (i, se) in series.enumerated() {
        for p in se.points {
            s += mark(se.marker, px(p.x), py(p.y), se.color, "\(p.label): (\(fmt(p.x, 3)), \(fmt(p.y, 3)))")
        }
        let ly = top + 10 + Double(i) * 18
        s += mark(se.marker, left + pw + 20, ly, se.color, se.name)
        s += "<text x=\"\(left + pw + 32)\" y=\"\(ly + 4)\">\(escapeXML(se.name))</text>\n"
    }
    return s + "</svg>\n"
}

/// Axis range covering `values` with a margin, clipped to [0, 1].
func unitRange(_ values: [Double]) -> ClosedRange<Double> {
    guard let lo = values.min(), let hi = values.max() else { return 0...1 }
    let pad = max(0.02, (hi - lo) * 0.1)
    return max(0, lo - pad)...min(1, hi + pad)
}

extension ResearchReport {
    /// The paper's violin figure for this run: the in-domain set and the four plotted HANS subcases (reference
    /// spellings), the full model as the segment, over the matching subnetworks (at least two).
    func paperViolin() throws -> Figure? {
        guard let f = full, !f.plottedSubcases.isEmpty else { return nil }
        let matched = matchingOutcomes
        guard matched.count >= 2 else { return nil }
        let rows = [f] + matched
        var columns = [(name: idKey, values: rows.map(\.id))]
        for (c, _) in f.plottedSubcases {
            columns.append((referenceHANSKey(c), rows.map { o in o.plottedSubcases.first { $0.0 == c }?.1 ?? .nan }))
        }
        let table = FlatResults(
            seeds: ["original"] + rows.dropFirst().map(\.name), sparsity: rows.map(\.sparsity), columns: columns)
        return try violinFigure(table, cases: columns.map(\.name), name: "subnetworks-vplot", inDomainCount: 1)
    }

    /// The two scatter figures: in-domain vs the OOD measure, and accuracy against sparsity.
    func scatterFigures() -> [(String, String)] {
        let all = subnetworks + (full.map { [$0] } ?? [])
        let entailed = all.filter { $0.oodEntailed != nil }
        var series = [
            Series(
                name: "subnetworks: \(oodMeasureName)", color: "#1f77b4",
                points: subnetworks.map { ($0.id, $0.oodMeasure, $0.name) })
        ]
        if !entailed.isEmpty {
            series.append(
                Series(
                    name: "HANS entailed accuracy", color: "#7f7f7f",
                    points: entailed.map { ($0.id, $0.oodEntailed!, $0.name) }, marker: "triangle"))
        }
        if let f = full {
            series.append(
                Series(
                    name: "full model", color: "#d62728", points: [(f.id, f.oodMeasure, "full")], marker: "diamond"))
        }
        let lowest = rule.full - rule.margin
        let xs = all.map(\.id) + [lowest]
        let band = lowest...max(lowest, xs.max() ?? 1)
        let ys = all.map(\.oodMeasure) + entailed.map { $0.oodEntailed! }
        let idVsOOD = svgScatter(
            title: "In-domain vs out-of-domain, per subnetwork", xLabel: "\(idKey) accuracy", yLabel: "accuracy",
            series: series, x: unitRange(xs), y: unitRange(ys), band: band,
            bandLabel: "matches: \(idKey) > full − \(String(format: "%g", rule.margin * 100)) points")
        var bySparsity = [
            Series(name: idKey, color: "#2ca02c", points: all.map { ($0.sparsity, $0.id, $0.name) }),
            Series(
                name: oodMeasureName, color: "#ff7f0e", points: all.map { ($0.sparsity, $0.oodMeasure, $0.name) },
                marker: "triangle"),
        ]
        if !entailed.isEmpty {
            bySparsity.append(
                Series(
                    name: "HANS entailed accuracy", color: "#7f7f7f",
                    points: entailed.map { ($0.sparsity, $0.oodEntailed!, $0.name) }, marker: "diamond"))
        }
        let accuracySparsity = svgScatter(
            title: "Accuracy against realised sparsity", xLabel: "sparsity (fraction of heads and MLPs pruned)",
            yLabel: "accuracy", series: bySparsity, x: 0...max(0.1, (all.map(\.sparsity).max() ?? 1) + 0.05),
            y: unitRange(all.map(\.id) + ys))
        return [("id-vs-ood.svg", idVsOOD), ("accuracy-sparsity.svg", accuracySparsity)]
    }

    /// Writes the figures, report.json and index.html into `folder`.
    public func write(folder: String) throws {
        try makeFolder(folder)
        func save(_ name: String, _ text: String) throws {
            try writeAtomically(Array(text.utf8), to: folder + "/" + name)
        }
        for (name, svg) in scatterFigures() { try save(name, svg) }
        if let violin = try paperViolin() { try save("subnetworks-vplot.svg", violin.canvas.svg) }
        let H = heads
        let LH = layers * heads
        let core = coreEvidence?.report
        let coreSet = Set(core.map { c in c.core.map { c.name($0).description } } ?? [])
        if let core {
            try save(
                "keep-frequency.svg",
                svgHeatmap(
                    title: "Keep frequency over the \(core.subnetworks.count) subnetworks matching the model in-domain",
                    layers: layers, heads: heads, values: { l, h in core.keepFrequency[l * H + h] },
                    mlp: { l in core.keepFrequency[LH + l] }, highlight: coreSet, legend: "1.0 = kept by every one"))
        }
        try save(
            "composition.svg",
            svgHeatmap(
                title: coreSet.isEmpty
                    ? "Composition with the core (no core heads)"
                    : "Composition with the core against each head's own null",
                layers: layers, heads: heads, values: { composition[PrunableUnit.head($0, $1).description] },
                highlight: coreSet, maxValue: 1,
                legend:
                    "1 − p: strongest Q/K/V composition with the core's heads vs the same maximum over random non-core heads of the core's layers (LayerNorms folded)"
            ))
        try save("report.json", json.pretty + "\n")
        try save("index.html", html)
    }

    public var json: JSONValue {
        func o(_ x: Outcome) -> JSONValue {
            .object([
                ("name", .string(x.name)), ("sparsity", .float(x.sparsity)),
                ("target_sparsity", x.targetSparsity.map { .float($0) } ?? .null), ("id_accuracy", .float(x.id)),
                ("id_agreement_with_full", x.idAgreement.map { .float($0) } ?? .null),
                ("ood_measure", .float(x.oodMeasure)),
                ("plotted_subcases", .object(x.plottedSubcases.map { ($0.0, .float($0.1)) })),
                ("hans_accuracy", .float(x.ood)),
                ("hans_entailed", x.oodEntailed.map { .float($0) } ?? .null),
                ("hans_non_entailed", x.oodNonEntailed.map { .float($0) } ?? .null),
                ("matches_full_in_domain", .bool(matching.contains(x.name))),
            ])
        }
        let spanJSON: JSONValue =
            span.map { s in
                .object([
                    ("span_points", .float(s.span)),
                    ("interval_95", .array([.float(s.interval.low), .float(s.interval.high)])),
                    ("bootstraps", .int(s.bootstraps)), ("noise_mean", .float(s.noiseMean)),
                    ("noise_95th", .float(s.noise95)), ("noise_p", .float(s.noiseP)),
                    ("permutations", .int(s.permutations)), ("seed", .unsigned(s.seed)),
                ])
            } ?? .null
        let leanJSON: JSONValue =
            lean.map { l in
                .object([
                    ("r_with_in_domain", l.withInDomain.map { .float($0) } ?? .null),
                    ("r_with_entailed", l.withEntailed.map { .float($0) } ?? .null),
                    ("r_squared", .float(l.rSquared)), ("residual_span_points", .float(l.residualSpan)),
                ])
            } ?? .null
        return .object([
            ("id", .string(idKey)), ("hans", .string(oodKey)),
            ("plotted_from", plottedKey.map { .string($0) } ?? .null),
            ("ood_measure", .string(oodMeasureName)),
            ("plotted_pairs", .object(plottedPairs.map { ($0.0, .int($0.1)) })),
            ("match_rule", .string(rule.words)), ("full", full.map(o) ?? .null),
            ("subnetworks", .array(subnetworks.map(o))), ("span", spanJSON), ("lean", leanJSON),
            (
                "verdict",
                .object([
                    ("outcome", .string(verdict.outcome.rawValue)), ("decided_by", .string(verdict.decidedBy)),
                    ("text", .string(verdict.text)),
                ])
            ),
            ("core", coreEvidence?.json ?? .null), ("core_refused", coreRefusal.map { .string($0) } ?? .null),
            ("readers", readers?.json ?? .null), ("configuration_record", record.map { .string($0) } ?? .null),
        ])
    }
}
