// SVG heatmaps (layers × heads, plus an MLP column) and DOT graphs, dependency-free and readable in any
// browser.
import Foundation
import Model

public func svgHeatmap(
    title: String, layers: Int, heads: Int, values: (Int, Int) -> Double?, mlp: ((Int) -> Double?)? = nil,
    highlight: Set<String> = [], maxValue: Double = 1, legend: String = ""
) -> String {
    let cell = 34
    let left = 70
    let top = 60
    let cols = heads + (mlp == nil ? 0 : 1)
    // Wide enough for the grid, the title and the legend line (0.6 em per character, generous).
    let note = legend + (highlight.isEmpty ? "" : " — red outline: the core")
    let width = max(
        left + cols * cell + 40, left + Int(0.6 * 15 * Double(title.count)) + 20,
        left + Int(0.6 * 11 * Double(note.count)) + 20)
    let height = top + layers * cell + 60
    var s =
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(width)\" height=\"\(height)\" viewBox=\"0 0 \(width) \(height)\" font-family=\"Helvetica,Arial,sans-serif\" font-size=\"11\">\n"
    s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    s += "<text x=\"\(left)\" y=\"24\" font-size=\"15\" font-weight=\"bold\">\(escapeXML(title))</text>\n"
    for h in 0..<heads {
        s += "<text x=\"\(left + h * cell + cell / 2)\" y=\"\(top - 8)\" text-anchor=\"middle\">h\(h)</text>\n"
    }
    if mlp != nil {
        s += "<text x=\"\(left + heads * cell + cell / 2)\" y=\"\(top - 8)\" text-anchor=\"middle\">MLP</text>\n"
    }
    func color(_ v: Double?) -> String {
        guard let v else { return "#eeeeee" }
        let t = max(0, min(1, v / maxValue))
        // white → deep blue
        let r = Int(255 - t * 222)
        let g = Int(255 - t * 178)
        let b = Int(255 - t * 75)
        return String(format: "#%02x%02x%02x", r, g, b)
    }
    for l in 0..<layers {
        s += "<text x=\"\(left - 8)\" y=\"\(top + l * cell + cell / 2 + 4)\" text-anchor=\"end\">layer \(l)</text>\n"
        for c in 0..<cols {
            let v = c < heads ? values(l, c) : mlp!(l)
            let key = (c < heads ? PrunableUnit.head(l, c) : PrunableUnit.mlp(l)).description
            let x = left + c * cell
            let y = top + l * cell
            s += "<rect x=\"\(x)\" y=\"\(y)\" width=\"\(cell - 2)\" height=\"\(cell - 2)\" fill=\"\(color(v))\""
            s += highlight.contains(key) ? " stroke=\"#d62728\" stroke-width=\"2.5\"" : " stroke=\"#cccccc\""
            s += "><title>\(key): \(v.map { String(format: "%.3f", $0) } ?? "—")</title></rect>\n"
            if let v {
                s +=
                    "<text x=\"\(x + cell / 2 - 1)\" y=\"\(y + cell / 2 + 3)\" text-anchor=\"middle\" font-size=\"9\" fill=\"\(v / maxValue > 0.6 ? "white" : "#333333")\">\(String(format: "%.2f", v))</text>\n"
            }
        }
    }
    s += "<text x=\"\(left)\" y=\"\(height - 20)\" fill=\"#555555\">\(escapeXML(note))</text>\n"
    return s + "</svg>\n"
}

public func dotGraph(
    name: String, edges: [(from: String, to: String, label: String, weight: Double)], core: Set<String>
) -> String {
    var s = "digraph \"\(name)\" {\n  rankdir=LR;\n  node [shape=box, style=rounded, fontname=Helvetica];\n"
    for c in core.sorted() { s += "  \"\(c)\" [style=\"rounded,filled\", fillcolor=\"#fde0dd\"];\n" }
    for e in edges {
        s +=
            "  \"\(e.from)\" -> \"\(e.to)\" [label=\"\(e.label)\", penwidth=\(String(format: "%.2f", 1 + 4 * e.weight))];\n"
    }
    return s + "}\n"
}

public func escapeXML(_ s: String) -> String {
    s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(
        of: ">", with: "&gt;"
    )
    .replacingOccurrences(of: "\"", with: "&quot;")
}
