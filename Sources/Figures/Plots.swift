// The paper's five figure kinds, each drawn from numbers alone and returned with the numbers it draws
// (`numbers`, what `hcore figures --json` prints): subnetwork violins, grouped bars, accuracy vs sparsity,
// effective size, and the keep-count heatmap of two subnetwork sets. Layouts follow the reference's
// scripts/visualization/*.py (seaborn defaults where they rely on them); accuracies are percent on the axes.
import Checkpoint
import Foundation

public struct Figure {
    public var name: String
    public var canvas: SVGCanvas
    public var numbers: JSONValue
}

func pct(_ v: Double) -> Double { 100 * v }
func rounded(_ v: Double, _ digits: Double = 1e4) -> JSONValue {
    v.isFinite ? .float((v * digits).rounded() / digits) : .null
}

/// Subnetwork violins: per case the subnetworks' accuracies (rows 1…, cut at the data, points drawn), a black
/// segment at the full model's (row 0), a dashed divider between in-domain and out-of-domain cases, y −1…100.
public func violinFigure(_ t: FlatResults, cases: [String], name: String, inDomainCount: Int? = nil) throws -> Figure {
    let values = try cases.map { c -> [Double] in
        guard let v = t.column(c) else {
            throw FiguresError.missing("no column '\(c)' (it has \(t.columns.map(\.name).joined(separator: ", ")))")
        }
        guard v.count >= 2 else {
            throw FiguresError.missing("column '\(c)' has no subnetwork rows after the full model")
        }
        return v.map(pct)
    }
    var c = SVGCanvas(width: 120 + 110 * Double(cases.count), height: 400)
    let area = PlotArea(left: 70, top: 50, width: c.width - 90, height: 290, x: 0...Double(cases.count), y: -1...100)
    area.draw(
        on: &c,
        xTicks: cases.enumerated().map {
            (
                Double($0) + 0.5,
                ReferenceCases.label($1).replacingOccurrences(of: " (", with: "\n(").replacingOccurrences(
                    of: " [", with: "\n[")
            )
        },
        yTicks: [0, 20, 40, 60, 80, 100], xTitle: "", yTitle: "Accuracy (%)")
    let grids = values.map { v -> (ys: [Double], density: [Double]) in
        let subs = Array(v.dropFirst())
        let lo = subs.min()!
        let hi = subs.max()!
        let ys = (0...60).map { lo + (hi - lo) * Double($0) / 60 }
        return (ys, kernelDensity(subs, at: ys))
    }
    var numbers: [(String, JSONValue)] = []
    for (i, v) in values.enumerated() {
        let mid = area.px(Double(i) + 0.5)
        let half = area.width / Double(cases.count) * 0.4
        // Each violin scaled to its own peak: the reference passes a palette without hue, which seaborn ≥ 0.13
        // turns into one hue per case, normalised apart (its PDFs show every violin at full width).
        let (ys, dens) = grids[i]
        let peak = max(1e-300, dens.max() ?? 1)
        if dens.contains(where: { $0 > 0 }) {
            let right = zip(ys, dens).map { (mid + half * $1 / peak, area.py($0)) }
            let left = zip(ys, dens).reversed().map { (mid - half * $1 / peak, area.py($0)) }
            c.polygon(right + left, fill: SVGCanvas.set3[i % 10], stroke: "#3d3d3d")
        } else {
            c.line(mid - half * 0.5, area.py(ys[0]), mid + half * 0.5, area.py(ys[0]), stroke: "#3d3d3d", width: 1.5)
        }
        for y in v.dropFirst() {
            c.marker("o", mid, area.py(y), size: 2.2, fill: "#3d3d3d", tip: String(format: "%.1f", y))
        }
        let slot = area.width / Double(cases.count)
        c.line(
            area.left + slot * Double(i), area.py(v[0]), area.left + slot * Double(i + 1), area.py(v[0]),
            stroke: "black", width: 1.6)
        let subs = Array(v.dropFirst())
        numbers.append(
            (
                cases[i],
                .object([
                    ("full", rounded(v[0])), ("subnetworks", .array(subs.map { rounded($0) })),
                    ("min", rounded(subs.min()!)), ("max", rounded(subs.max()!)),
                    ("mean", rounded(subs.reduce(0, +) / Double(subs.count))),
                ])
            ))
    }
    let idCount = inDomainCount ?? cases.prefix { ReferenceCases.isInDomain($0) }.count
    if idCount > 0 && idCount < cases.count {
        let x = area.px(Double(idCount))
        c.line(x, area.top, x, area.top + area.height, stroke: "black", width: 1.2, dash: true)
        c.text("In domain", area.left + (x - area.left) / 2, area.top - 12, size: 15)
        c.text("Out of domain", x + (area.left + area.width - x) / 2, area.top - 12, size: 15)
    }
    return Figure(name: name, canvas: c, numbers: .object([("kind", "violin"), ("cases", .object(numbers))]))
}

/// Grouped bars: groups = the full model and subnetworks #1…, one bar per case (tab10 colours), a dashed line
/// after the full model.
public func barFigure(_ t: FlatResults, cases: [String], name: String) throws -> Figure {
    let values = try cases.map { c -> [Double] in
        guard let v = t.column(c) else { throw FiguresError.missing("no column '\(c)'") }
        return v.map(pct)
    }
    let groups = t.seeds.count
    var c = SVGCanvas(width: max(700, 70 + Double(groups) * 62 + 190), height: 330)
    let area = PlotArea(left: 70, top: 30, width: c.width - 70 - 190, height: 240, x: 0...Double(groups), y: 0...100)
    let labels = (0..<groups).map { $0 == 0 ? "Full\nModel" : "#\($0)" }
    area.draw(
        on: &c, xTicks: labels.enumerated().map { (Double($0) + 0.5, $1) }, yTicks: [0, 20, 40, 60, 80, 100],
        xTitle: "", yTitle: "Accuracy (%)")
    let slot = area.width / Double(groups)
    let barW = slot * 0.8 / Double(cases.count)
    for g in 0..<groups {
        for (k, v) in values.enumerated() {
            let x = area.left + slot * Double(g) + slot * 0.1 + barW * Double(k)
            c.rect(
                x, area.py(v[g]), barW, area.py(0) - area.py(v[g]), fill: SVGCanvas.tab10[k % 10],
                tip:
                    "\(labels[g].replacingOccurrences(of: "\n", with: " ")) · \(ReferenceCases.label(cases[k])): \(String(format: "%.1f", v[g]))"
            )
        }
    }
    c.line(area.left + slot, area.top, area.left + slot, area.top + area.height, stroke: "black", width: 1, dash: true)
    for (k, name) in cases.enumerated() {
        let y = area.top + 10 + Double(k) * 20
        c.rect(area.left + area.width + 14, y - 9, 12, 12, fill: SVGCanvas.tab10[k % 10])
        c.text(ReferenceCases.label(name), area.left + area.width + 32, y + 1, size: 11, anchor: "start")
    }
    return Figure(
        name: name, canvas: c,
        numbers: .object([
            ("kind", "bars"), ("groups", .array(labels.map { .string($0.replacingOccurrences(of: "\n", with: " ")) })),
            ("cases", .object(cases.indices.map { (cases[$0], .array(values[$0].map { rounded($0) })) })),
        ]))
}

/// Lines with markers and a shaded 95% band over x; `series` = (label, colour, marker, [x: values over seeds]).
func bandedLines(
    _ c: inout SVGCanvas, area: PlotArea,
    series: [(label: String, color: String, marker: String, points: [(x: Double, values: [Double])])], seed: UInt64
) -> JSONValue {
    var out: [(String, JSONValue)] = []
    for (k, s) in series.enumerated() {
        let bands = s.points.map { meanBand($0.values, seed: seed &+ UInt64(k)) }
        let upper = zip(s.points, bands).map { (area.px($0.x), area.py($1.high)) }
        let lower = zip(s.points, bands).reversed().map { (area.px($0.x), area.py($1.low)) }
        c.polygon(upper + lower, fill: s.color, opacity: 0.2)
        c.polyline(zip(s.points, bands).map { (area.px($0.x), area.py($1.mean)) }, stroke: s.color, width: 2.5)
        for (p, b) in zip(s.points, bands) {
            c.marker(
                s.marker, area.px(p.x), area.py(b.mean), size: 4.5, fill: s.color,
                tip: String(format: "%@ at %g: %.1f [%.1f, %.1f]", s.label, p.x, b.mean, b.low, b.high))
        }
        let ly = area.top + 14 + Double(k) * 20
        c.line(area.left + area.width + 14, ly, area.left + area.width + 40, ly, stroke: s.color, width: 2.5)
        c.marker(s.marker, area.left + area.width + 27, ly, size: 4.5, fill: s.color)
        c.text(s.label, area.left + area.width + 46, ly + 4, size: 12, anchor: "start")
        out.append(
            (
                s.label,
                .array(
                    zip(s.points, bands).map { p, b in
                        .object([
                            ("x", rounded(p.x)), ("mean", rounded(b.mean)), ("low", rounded(b.low)),
                            ("high", rounded(b.high)), ("n", .int(p.values.count)),
                        ])
                    })
            ))
    }
    return .object(out)
}

/// Accuracy vs target sparsity: ID = mean of the in-domain cases, OOD = mean of the out-of-domain cases, each
/// point the mean over seeds with a seeded 95% bootstrap band.
public func accuracyVsSparsityFigure(
    _ sweep: [String: [Int: CaseAccuracies]], idCases: [String], oodCases: [String], name: String, seed: UInt64
) throws -> Figure {
    let seeds = sweep.keys.sorted()
    let targets = Set(sweep.values.flatMap(\.keys)).sorted()
    func means(_ cases: [String]) throws -> [(x: Double, values: [Double])] {
        try targets.map { t in
            (
                Double(t),
                try seeds.compactMap { s in
                    guard let cell = sweep[s]?[t] else { return nil }
                    return pct(
                        try cases.map { c in
                            guard let v = cell[c] else {
                                throw FiguresError.missing("seed \(s), sparsity \(t): no case '\(c)'")
                            }
                            return v
                        }.reduce(0, +) / Double(cases.count))
                }
            )
        }
    }
    var c = SVGCanvas(width: 640, height: 320)
    let area = PlotArea(
        left: 70, top: 20, width: 470, height: 240,
        x: Double(targets.first ?? 0)...Double(max((targets.last ?? 1), (targets.first ?? 0) + 1)), y: 0...100)
    area.draw(
        on: &c, xTicks: stride(from: 0, to: targets.count, by: 2).map { (Double(targets[$0]), "\(targets[$0])") },
        yTicks: [0, 20, 40, 60, 80, 100],
        xTitle: "Sparsity (%)", yTitle: "Avg. Accuracy (%)")
    let lines = bandedLines(
        &c, area: area,
        series: [
            ("ID", SVGCanvas.tab10[1], "v", try means(idCases)), ("OOD", SVGCanvas.tab10[2], "^", try means(oodCases)),
        ], seed: seed)
    return Figure(
        name: name, canvas: c,
        numbers: .object([
            ("kind", "accuracy_vs_sparsity"), ("id_cases", .array(idCases.map { .string($0) })),
            ("ood_cases", .array(oodCases.map { .string($0) })), ("seeds", .array(seeds.map { .string($0) })),
            ("series", lines),
        ]))
}

/// Effective size over fine-tuning steps: ID+OOD, ID and OOD series (`effectiveSizes`), mean over seeds with
/// a seeded 95% band, y 22…101 as in the paper.
public func effectiveSizeFigure(
    grid: [String: [Int: [Int: CaseAccuracies]]], curve: [Int: CaseAccuracies], cases: [String], margin: Double,
    name: String, seed: UInt64
) throws -> Figure {
    let id = cases.filter(ReferenceCases.isInDomain)
    let ood = cases.filter { !ReferenceCases.isInDomain($0) }
    let series = try [("ID + OOD", cases), ("ID", id), ("OOD", ood)].filter { !$0.1.isEmpty }.map {
        try effectiveSizes(grid: grid, curve: curve, cases: $0.1, name: $0.0, margin: margin)
    }
    guard let steps = series.first?.steps, let first = steps.first, let last = steps.last else {
        throw FiguresError.missing(
            "\(name): no case to draw (the files hold none of the paper's cases: name the in-domain and out-of-domain cases)"
        )
    }
    var c = SVGCanvas(width: 660, height: 320)
    let area = PlotArea(
        left: 70, top: 20, width: 460, height: 240,
        x: Double(first)...Double(max(last, first + 1)), y: 22...101)
    area.draw(
        on: &c, xTicks: stride(from: 0, to: steps.count, by: 2).map { (Double(steps[$0]), "\(steps[$0])") },
        yTicks: [30, 40, 50, 60, 70, 80, 90, 100],
        xTitle: "Steps", yTitle: "Effective Size (%)")
    let marks = ["o", "v", "^"]
    let lines = bandedLines(
        &c, area: area,
        series: series.enumerated().map { k, s in
            (s.name, SVGCanvas.tab10[k], marks[k], zip(s.steps, s.sizes).map { (Double($0), $1.map(Double.init)) })
        }, seed: seed)
    return Figure(
        name: name, canvas: c,
        numbers: .object([
            ("kind", "effective_size"), ("margin", .float(margin)), ("cases", .array(cases.map { .string($0) })),
            ("series", lines),
        ]))
}

/// Keep counts of every head over two sets of subnetworks as a grid: cell (a, b) = how many heads are kept by
/// exactly a subnetworks of the first set and b of the second (the paper's frequency heatmap).
public func keepCountHeatmap(first: [[Bool]], second: [[Bool]], labels: (String, String), name: String) throws -> Figure
{
    guard let heads = first.first?.count, !second.isEmpty, first.allSatisfy({ $0.count == heads }),
        second.allSatisfy({ $0.count == heads })
    else {
        throw FiguresError.missing("the heatmap needs two non-empty sets of subnetworks over the same heads")
    }
    let A = first.count
    let B = second.count
    var grid = [[Int]](repeating: [Int](repeating: 0, count: B + 1), count: A + 1)
    for h in 0..<heads { grid[first.filter { $0[h] }.count][second.filter { $0[h] }.count] += 1 }
    let cell = min(34.0, 440 / Double(max(A, B) + 1))
    let left = 90.0
    let top = 30.0
    var c = SVGCanvas(width: left + cell * Double(B + 1) + 70, height: top + cell * Double(A + 1) + 70)
    let peak = Double(grid.flatMap { $0 }.max() ?? 1)
    for a in 0...A {
        for b in 0...B {
            let v = grid[A - a][b]
            let t = Double(v) / max(1, peak)  // row 0 at the top = count A
            let color = yellowGreenBlue(t)
            c.rect(
                left + cell * Double(b), top + cell * Double(a), cell - 1, cell - 1, fill: color,
                tip: "\(v) heads kept by \(A - a) of \(labels.0) and \(b) of \(labels.1)")
            if v > 0 {
                c.text(
                    "\(v)", left + cell * (Double(b) + 0.5), top + cell * (Double(a) + 0.5) + 4,
                    size: min(11, cell * 0.4), color: t > 0.6 ? "white" : "#262626")
            }
        }
    }
    for a in 0...A where a % max(1, (A + 1) / 7) == 0 {
        c.text("\(A - a)", left - 6, top + cell * (Double(a) + 0.5) + 4, size: 10, anchor: "end")
    }
    for b in 0...B where b % max(1, (B + 1) / 7) == 0 {
        c.text("\(b)", left + cell * (Double(b) + 0.5), top + cell * Double(A + 1) + 14, size: 10)
    }
    for k in 0...20 {  // colour bar
        c.rect(
            left + cell * Double(B + 1) + 12, top + cell * Double(A + 1) * Double(20 - k) / 21, 12,
            cell * Double(A + 1) / 21 + 0.5, fill: yellowGreenBlue(Double(k) / 20))
    }
    c.text("\(Int(peak))", left + cell * Double(B + 1) + 28, top + 8, size: 10, anchor: "start")
    c.text("0", left + cell * Double(B + 1) + 28, top + cell * Double(A + 1), size: 10, anchor: "start")
    c.text("kept by how many of \(labels.1)", left + cell * Double(B + 1) / 2, c.height - 16, size: 12)
    c.text("kept by how many of \(labels.0)", 24, top + cell * Double(A + 1) / 2, size: 12, rotate: -90)
    return Figure(
        name: name, canvas: c,
        numbers: .object([
            ("kind", "keep_count_heatmap"), ("first", .string(labels.0)), ("second", .string(labels.1)),
            ("subnetworks", .array([.int(A), .int(B)])), ("grid", .array(grid.map { .array($0.map { .int($0) }) })),
        ]))
}

/// Matplotlib's YlGnBu colour map at t ∈ [0, 1] (its nine anchor colours, linearly interpolated).
func yellowGreenBlue(_ t: Double) -> String {
    let anchors: [(Double, Double, Double)] = [
        (255, 255, 217), (237, 248, 177), (199, 233, 180), (127, 205, 187), (65, 182, 196),
        (29, 145, 192), (34, 94, 168), (37, 52, 148), (8, 29, 88),
    ]
    let x = max(0, min(1, t)) * Double(anchors.count - 1)
    let i = min(anchors.count - 2, Int(x))
    let f = x - Double(i)
    let (a, b) = (anchors[i], anchors[i + 1])
    return String(
        format: "#%02x%02x%02x", Int(a.0 + f * (b.0 - a.0)), Int(a.1 + f * (b.1 - a.1)), Int(a.2 + f * (b.2 - a.2)))
}
