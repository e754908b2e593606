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
    /// spellings), the full model as the segment, over the matching subnetworks (all, when fewer than two match).
    func paperViolin() throws -> Figure? {
        guard let f = full, !f.plottedSubcases.isEmpty else { return nil }
        let matched = subnetworks.filter { matching.contains($0.name) }
        let rows = [f] + (matched.count >= 2 ? matched : subnetworks)
        guard rows.count >= 3 else { return nil }
        var columns = [(name: idKey, values: rows.map(\.id))]
        for (c, _) in f.plottedSubcases {
            columns.append((referenceHANSKey(c), rows.map { o in o.plottedSubcases.first { $0.0 == c }?.1 ?? .nan }))
        }
        let table = FlatResults(
            seeds: ["original"] + rows.dropFirst().map(\.name), sparsity: rows.map(\.sparsity), columns: columns)
        return try violinFigure(table, cases: columns.map(\.name), name: "subnetworks-vplot", inDomainCount: 1)
    }

    /// Writes the figures, report.json and index.html into `folder`.
    public func write(folder: String) throws {
        try makeFolder(folder)
        func save(_ name: String, _ text: String) throws {
            try writeAtomically(Array(text.utf8), to: folder + "/" + name)
        }
        let oodY: (Outcome) -> Double = { $0.oodNonEntailed ?? $0.ood }
        let oodName =
            full?.oodNonEntailed != nil || subnetworks.first?.oodNonEntailed != nil
            ? "\(oodKey) non-entailment accuracy" : "\(oodKey) accuracy"

        // Figure 1: ID vs OOD.
        let all = subnetworks + (full.map { [$0] } ?? [])
        var series = [
            Series(name: "subnetworks", color: "#1f77b4", points: subnetworks.map { ($0.id, oodY($0), $0.name) })
        ]
        if let f = full {
            series.append(
                Series(name: "full model", color: "#d62728", points: [(f.id, oodY(f), "full")], marker: "diamond"))
        }
        let band = full.map { ($0.id - matchPoints / 100)...($0.id + matchPoints / 100) }
        try save(
            "id-vs-ood.svg",
            svgScatter(
                title: "In-domain vs out-of-domain, per subnetwork", xLabel: "\(idKey) accuracy", yLabel: oodName,
                series: series, x: unitRange(all.map(\.id) + (band.map { [$0.lowerBound, $0.upperBound] } ?? [])),
                y: unitRange(all.map(oodY)), band: band,
                bandLabel: "within \(String(format: "%g", matchPoints)) points of the full model"))
        // Figure 2: accuracy vs sparsity.
        try save(
            "accuracy-sparsity.svg",
            svgScatter(
                title: "Accuracy against sparsity", xLabel: "sparsity (fraction of heads and MLPs pruned)",
                yLabel: "accuracy",
                series: [
                    Series(name: idKey, color: "#2ca02c", points: all.map { ($0.sparsity, $0.id, $0.name) }),
                    Series(
                        name: oodName, color: "#ff7f0e", points: all.map { ($0.sparsity, oodY($0), $0.name) },
                        marker: "triangle"),
                ],
                x: 0...max(0.1, (all.map(\.sparsity).max() ?? 1) + 0.05), y: unitRange(all.map(\.id) + all.map(oodY))))
        // Figure 2b: the paper's violins of the subnetworks (matching ones when at least two match).
        if let violin = try paperViolin() { try save("subnetworks-vplot.svg", violin.canvas.svg) }
        // Figure 3: keep frequency over matching subnetworks.
        let H = heads
        let LH = layers * heads
        let coreSet = Set(core.core.map { core.name($0).description })
        try save(
            "keep-frequency.svg",
            svgHeatmap(
                title:
                    "Keep frequency over \(core.subnetworks.count) \(coreOverMatching ? "subnetworks matching the model in-domain" : "subnetworks (fewer than 2 match in-domain)")",
                layers: layers, heads: heads,
                values: { l, h in core.keepFrequency.isEmpty ? nil : core.keepFrequency[l * H + h] },
                mlp: { l in core.keepFrequency.isEmpty ? nil : core.keepFrequency[LH + l] }, highlight: coreSet,
                legend: "1.0 = kept by every one"))
        // Figure 4: composition with the core.
        let maxC = max(0.1, composition.values.max() ?? 0.1)
        try save(
            "composition.svg",
            svgHeatmap(
                title: coreSet.isEmpty
                    ? "Composition with the core (the core has no heads)" : "Strongest Q/K/V composition with the core",
                layers: layers, heads: heads, values: { composition[PrunableUnit.head($0, $1).description] },
                highlight: coreSet, maxValue: maxC,
                legend:
                    "random baseline Q \(fmt(compositionBaseline.q, 3)) K \(fmt(compositionBaseline.k, 3)) V \(fmt(compositionBaseline.v, 3))"
            ))
        try save("report.json", json.pretty + "\n")
        try save("index.html", html)
    }

    public var json: JSONValue {
        func o(_ x: Outcome) -> JSONValue {
            .object([
                ("name", .string(x.name)), ("sparsity", .float(x.sparsity)), ("id_accuracy", .float(x.id)),
                ("ood_accuracy", .float(x.ood)),
                ("ood_entailed", x.oodEntailed.map { .float($0) } ?? .null),
                ("ood_non_entailed", x.oodNonEntailed.map { .float($0) } ?? .null),
                ("matches_full_in_domain", .bool(matching.contains(x.name))),
            ])
        }
        return .object([
            ("id", .string(idKey)), ("ood", .string(oodKey)), ("full", full.map(o) ?? .null),
            ("subnetworks", .array(subnetworks.map(o))),
            ("match_points", .float(matchPoints)), ("spread_points", spread.map { .float($0.high - $0.low) } ?? .null),
            ("verdict", .string(verdict)), ("core", core.json), ("reads", reads?.json ?? .null),
        ])
    }

    var html: String {
        func pct(_ x: Double?) -> String { x.map { fmt($0 * 100, 1) } ?? "—" }
        var h = """
            <!doctype html>
            <html><head><meta charset="utf-8"><title>hcore report</title>
            <style>body{font-family:Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;color:#222}
            table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
            th{background:#f4f4f4}td:first-child{text-align:left}.verdict{background:#f7f7e8;padding:0.8em;border-left:4px solid #b5a000}
            img{max-width:100%}figure{display:inline-block;margin:0.5em}</style></head><body>
            <h1>Subnetworks of one model: in-domain vs out-of-domain</h1>
            <p>In-domain set <b>\(escapeXML(idKey))</b>, out-of-domain set <b>\(escapeXML(oodKey))</b>. Pruned units are replaced by their mean activation.</p>
            <p class="verdict">\(escapeXML(verdict))</p>

            """
        if let f = full {
            h +=
                "<h2>The full model</h2><table><tr><th>\(escapeXML(idKey))</th><th>\(escapeXML(oodKey))</th><th>entailed</th><th>non-entailed</th></tr>"
            h +=
                "<tr><td>\(pct(f.id))</td><td>\(pct(f.ood))</td><td>\(pct(f.oodEntailed))</td><td>\(pct(f.oodNonEntailed))</td></tr></table>\n"
            if !f.cells.isEmpty {
                h += "<table><tr><th>HANS cell (heuristic / gold)</th><th>accuracy</th></tr>"
                for c in f.cells { h += "<tr><td>\(escapeXML(c.0))</td><td>\(pct(c.1))</td></tr>" }
                h += "</table>\n"
            }
        }
        h += "<h2>Figures</h2>\n"
        for (file, caption) in [
            (
                "id-vs-ood.svg",
                "Each subnetwork's in-domain accuracy against its out-of-domain accuracy; the shaded band is the full model ± \(String(format: "%g", matchPoints)) points in-domain."
            ),
            ("accuracy-sparsity.svg", "Accuracy against sparsity."),
        ]
            + ((try? paperViolin()) != nil
                ? [
                    (
                        "subnetworks-vplot.svg",
                        "The paper's violin figure for this run: the subnetworks' accuracy in-domain and on the four HANS subcases the paper plots; black segments: the full model; dashed: in-domain | out-of-domain."
                    )
                ] : [])
            + [
                (
                    "keep-frequency.svg",
                    "How often each head and MLP is kept by the subnetworks that match the model in-domain; outlined: the core."
                ),
                ("composition.svg", "Each head's strongest composition with a core head (Q, K or V)."),
            ] as [(String, String)]
        {
            h +=
                "<figure><img src=\"\(file)\" alt=\"\(file)\"><figcaption>\(escapeXML(caption))</figcaption></figure>\n"
        }
        h +=
            "<h2>Subnetworks</h2><table><tr><th>name</th><th>sparsity</th><th>\(escapeXML(idKey))</th><th>Δ vs full</th><th>\(escapeXML(oodKey))</th><th>non-entailed</th><th>matches in-domain</th></tr>\n"
        for s in subnetworks.sorted(by: { $0.id > $1.id }) {
            let delta = full.map { fmt(($0.id - s.id) * -100, 1) } ?? "—"
            h +=
                "<tr><td>\(escapeXML(s.name))</td><td>\(fmt(s.sparsity, 2))</td><td>\(pct(s.id))</td><td>\(delta)</td><td>\(pct(s.ood))</td><td>\(pct(s.oodNonEntailed))</td><td>\(matching.contains(s.name) ? "yes" : "no")</td></tr>\n"
        }
        h +=
            "</table>\n<h2>The core</h2><p>Units kept by every one of the \(core.subnetworks.count) \(coreOverMatching ? "matching subnetworks" : "subnetworks (fewer than two match the model in-domain, so all of them)"): <b>"
        h += core.core.isEmpty ? "none" : core.core.map { core.name($0).description }.joined(separator: ", ")
        h += "</b>.</p>\n"
        if let r = reads {
            h +=
                "<p>Mean-ablating the core's heads changes the logits by \(fmt(r.meanAbsLogitChange, 4)) on average (KL \(fmt(r.klCleanToAblated, 5))) over \(r.examples) \(escapeXML(oodKey)) examples. Heads that read most from the core (output change when only their input loses the core):</p>"
            h += "<table><tr><th>head</th><th>Δ output</th><th>Δ Q input</th><th>Δ K input</th><th>Δ V input</th></tr>"
            for x in r.reads.prefix(10) {
                h +=
                    "<tr><td>\(PrunableUnit.head(x.layer, x.head))</td><td>\(fmt(x.dout, 4))</td><td>\(fmt(x.dq, 4))</td><td>\(fmt(x.dk, 4))</td><td>\(fmt(x.dv, 4))</td></tr>"
            }
            h += "</table>\n"
        }
        h += "<p style=\"color:#777\">Written by hcore report. Data: report.json.</p></body></html>\n"
        return h
    }
}
