// A small SVG writer for the figures: a plot area in data coordinates on seaborn's "darkgrid" look (grey
// panel, white grid lines), and every text element's estimated extent kept so that a test can check that
// nothing is drawn outside the picture (text is measured at 0.6 em per character, generous for Helvetica).
import Foundation

public struct SVGCanvas {
    public let width: Double, height: Double
    private(set) var body = ""
    /// Estimated bounding boxes of the text drawn: (text, minX, minY, maxX, maxY).
    public private(set) var textExtents: [(text: String, x0: Double, y0: Double, x1: Double, y1: Double)] = []

    public init(width: Double, height: Double) { (self.width, self.height) = (width, height) }

    public static let tab10 = [
        "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
    ]
    public static let set3 = [
        "#8dd3c7", "#ffffb3", "#bebada", "#fb8072", "#80b1d3", "#fdb462", "#b3de69", "#fccde5", "#d9d9d9", "#bc80bd",
    ]

    static func n(_ v: Double) -> String { String(format: "%.2f", v) }

    public mutating func raw(_ s: String) { body += s + "\n" }

    public mutating func rect(
        _ x: Double, _ y: Double, _ w: Double, _ h: Double, fill: String, stroke: String? = nil, opacity: Double = 1,
        tip: String? = nil
    ) {
        body +=
            "<rect x=\"\(Self.n(x))\" y=\"\(Self.n(y))\" width=\"\(Self.n(max(0, w)))\" height=\"\(Self.n(max(0, h)))\" fill=\"\(fill)\""
        if let stroke { body += " stroke=\"\(stroke)\"" }
        if opacity < 1 { body += " fill-opacity=\"\(Self.n(opacity))\"" }
        body += tip.map { "><title>\(escape($0))</title></rect>\n" } ?? "/>\n"
    }

    public mutating func line(
        _ x0: Double, _ y0: Double, _ x1: Double, _ y1: Double, stroke: String, width: Double = 1, dash: Bool = false
    ) {
        body +=
            "<line x1=\"\(Self.n(x0))\" y1=\"\(Self.n(y0))\" x2=\"\(Self.n(x1))\" y2=\"\(Self.n(y1))\" stroke=\"\(stroke)\" stroke-width=\"\(Self.n(width))\"\(dash ? " stroke-dasharray=\"5,4\"" : "")/>\n"
    }

    public mutating func polygon(
        _ points: [(Double, Double)], fill: String, stroke: String = "none", opacity: Double = 1
    ) {
        body +=
            "<polygon points=\"" + points.map { "\(Self.n($0.0)),\(Self.n($0.1))" }.joined(separator: " ")
            + "\" fill=\"\(fill)\" stroke=\"\(stroke)\""
        body += opacity < 1 ? " fill-opacity=\"\(Self.n(opacity))\"/>\n" : "/>\n"
    }

    public mutating func polyline(_ points: [(Double, Double)], stroke: String, width: Double) {
        body +=
            "<polyline points=\"" + points.map { "\(Self.n($0.0)),\(Self.n($0.1))" }.joined(separator: " ")
            + "\" fill=\"none\" stroke=\"\(stroke)\" stroke-width=\"\(Self.n(width))\"/>\n"
    }

    /// A marker: circle, "v" (triangle down) or "^" (triangle up).
    public mutating func marker(
        _ shape: String, _ x: Double, _ y: Double, size: Double, fill: String, tip: String? = nil
    ) {
        let t = tip.map { "<title>\(escape($0))</title>" } ?? ""
        switch shape {
        case "v":
            body +=
                "<polygon points=\"\(Self.n(x - size)),\(Self.n(y - size * 0.8)) \(Self.n(x + size)),\(Self.n(y - size * 0.8)) \(Self.n(x)),\(Self.n(y + size))\" fill=\"\(fill)\" stroke=\"white\" stroke-width=\"0.6\">\(t)</polygon>\n"
        case "^":
            body +=
                "<polygon points=\"\(Self.n(x - size)),\(Self.n(y + size * 0.8)) \(Self.n(x + size)),\(Self.n(y + size * 0.8)) \(Self.n(x)),\(Self.n(y - size))\" fill=\"\(fill)\" stroke=\"white\" stroke-width=\"0.6\">\(t)</polygon>\n"
        default:
            body +=
                "<circle cx=\"\(Self.n(x))\" cy=\"\(Self.n(y))\" r=\"\(Self.n(size))\" fill=\"\(fill)\" stroke=\"white\" stroke-width=\"0.6\">\(t)</circle>\n"
        }
    }

    /// Text anchored at (x, y) ("start", "middle", "end"); `rotate` −90 for a vertical axis label. Several lines
    /// split on "\n", each `size` · 1.2 apart.
    public mutating func text(
        _ s: String, _ x: Double, _ y: Double, size: Double = 12, anchor: String = "middle", rotate: Double = 0,
        bold: Bool = false, color: String = "#262626"
    ) {
        let lines = s.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let w = Double(lines.map(\.count).max() ?? 0) * 0.6 * size
        let h = Double(lines.count) * size * 1.2
        let shift = anchor == "middle" ? w / 2 : anchor == "end" ? w : 0
        if rotate == 0 {
            textExtents.append((s, x - shift, y - size, x - shift + w, y - size + h))
        } else {
            textExtents.append((s, x - size, y - w + shift, x - size + h, y + shift))
        }
        body +=
            "<text x=\"\(Self.n(x))\" y=\"\(Self.n(y))\" font-size=\"\(Self.n(size))\" text-anchor=\"\(anchor)\" fill=\"\(color)\""
        if bold { body += " font-weight=\"bold\"" }
        if rotate != 0 { body += " transform=\"rotate(\(Self.n(rotate)) \(Self.n(x)) \(Self.n(y)))\"" }
        body +=
            ">"
            + lines.enumerated().map { i, l in
                i == 0 ? escape(l) : "<tspan x=\"\(Self.n(x))\" dy=\"\(Self.n(size * 1.2))\">\(escape(l))</tspan>"
            }.joined() + "</text>\n"
    }

    /// Texts whose estimated extent leaves the picture.
    public var clippedTexts: [String] {
        textExtents.filter { $0.x0 < 0 || $0.y0 < 0 || $0.x1 > width || $0.y1 > height }.map(\.text)
    }

    public var svg: String {
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" viewBox=\"0 0 \(Int(width)) \(Int(height))\" "
            + "font-family=\"DejaVu Sans,Helvetica,Arial,sans-serif\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
            + body + "</svg>\n"
    }

    func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(
            of: ">", with: "&gt;")
    }
}

/// A rectangular plot area mapping data coordinates to the canvas, drawn on a grey panel with white grid lines.
public struct PlotArea {
    public var left: Double, top: Double, width: Double, height: Double
    public var x: ClosedRange<Double>, y: ClosedRange<Double>
    public func px(_ v: Double) -> Double { left + (v - x.lowerBound) / (x.upperBound - x.lowerBound) * width }
    public func py(_ v: Double) -> Double { top + height - (v - y.lowerBound) / (y.upperBound - y.lowerBound) * height }

    /// The panel, y grid lines and tick labels at `yTicks`, x ticks at `xTicks` (value, label), axis titles.
    public func draw(
        on c: inout SVGCanvas, xTicks: [(Double, String)], yTicks: [Double], xTitle: String, yTitle: String,
        tickSize: Double = 11
    ) {
        c.rect(left, top, width, height, fill: "#eaeaf2")
        for v in yTicks {
            c.line(left, py(v), left + width, py(v), stroke: "white", width: 1)
            c.text(
                String(format: v == v.rounded() ? "%.0f" : "%.1f", v), left - 6, py(v) + tickSize * 0.35,
                size: tickSize, anchor: "end")
        }
        for (v, label) in xTicks {
            c.line(px(v), top, px(v), top + height, stroke: "white", width: 1)
            c.text(label, px(v), top + height + tickSize + 6, size: tickSize)
        }
        if !xTitle.isEmpty { c.text(xTitle, left + width / 2, c.height - 10, size: 13) }
        if !yTitle.isEmpty { c.text(yTitle, 18, top + height / 2, size: 13, rotate: -90) }
    }
}
