// The heuristic core: which units (heads, MLPs) every good subnetwork keeps.
import Checkpoint
import Foundation
import Model
import Store

public struct CoreReport: Sendable {
    public let layout: StoreLayout
    public let subnetworks: [String]
    /// Fraction of subnetworks keeping each unit, in store order (heads layer-major, then MLPs).
    public let keepFrequency: [Double]
    /// Units kept by at least `fraction` of the subnetworks.
    public let core: [Int]
    public let fraction: Double
    /// Pearson correlation of each unit's presence (0/1) with a metric from the metadata, when asked
    /// (nil for a unit kept by all or none: its presence does not vary).
    public let metric: String?
    public let correlation: [Double?]

    public func name(_ unit: Int) -> PrunableUnit {
        PrunableUnit(index: unit, layers: layout.layers, heads: layout.heads)
    }

    public var json: JSONValue {
        .object([
            ("subnetworks", .int(subnetworks.count)), ("fraction", .float(fraction)),
            ("core", .array(core.map { .string(name($0).description) })),
            (
                "core_heads",
                .array(
                    core.filter { $0 < layout.layers * layout.heads }.map {
                        .array([.int($0 / layout.heads), .int($0 % layout.heads)])
                    })
            ),
            (
                "keep_frequency",
                .object(keepFrequency.indices.map { (name($0).description, .float(keepFrequency[$0])) })
            ),
            ("metric", metric.map { .string($0) } ?? .null),
            (
                "correlation",
                metric == nil
                    ? .null
                    : .object(
                        correlation.indices.map { (name($0).description, correlation[$0].map { .float($0) } ?? .null) })
            ),
        ])
    }

    public var csv: String {
        var rows = ["unit,layer,head,keep_frequency,in_core" + (metric != nil ? ",correlation" : "")]
        for u in keepFrequency.indices {
            let n = name(u)
            rows.append(
                "\(n),\(n.layer),\(n.head.map(String.init) ?? "mlp"),\(keepFrequency[u]),\(core.contains(u) ? 1 : 0)"
                    + (metric != nil ? ",\(correlation[u].map { "\($0)" } ?? "")" : ""))
        }
        return rows.joined(separator: "\n") + "\n"
    }
}

/// Keep frequencies, the core (units kept by ≥ `fraction` of subnetworks) and, with `metric`, each unit's
/// presence–metric correlation over the given subnetworks.
public func findCore(_ subs: [StoredSubnetwork], layout: StoreLayout, fraction: Double = 1.0, metric: String? = nil)
    -> CoreReport
{
    let U = layout.unitCount
    let n = Double(max(1, subs.count))
    var counts = [Int](repeating: 0, count: U)
    for s in subs { for u in 0..<U where s.mask[u] == 1 { counts[u] += 1 } }
    let freq = counts.map { Double($0) / n }
    let core = (0..<U).filter { !subs.isEmpty && freq[$0] >= fraction - 1e-12 }
    var corr = [Double?](repeating: nil, count: U)
    if let metric {
        let pairs = subs.compactMap { s in s.meta.get(metric)?.doubleValue.map { (s, $0) } }
        let ys = pairs.map(\.1)
        for u in 0..<U {
            let xs = pairs.map { Double($0.0.mask[u]) }
            corr[u] = pearson(xs, ys)
        }
    }
    return CoreReport(
        layout: layout, subnetworks: subs.map(\.name), keepFrequency: freq, core: core, fraction: fraction,
        metric: metric, correlation: corr)
}

func pearson(_ x: [Double], _ y: [Double]) -> Double? {
    guard x.count == y.count, x.count > 1 else { return nil }
    let mx = x.reduce(0, +) / Double(x.count)
    let my = y.reduce(0, +) / Double(y.count)
    var sxy = 0.0
    var sxx = 0.0
    var syy = 0.0
    for i in x.indices {
        sxy += (x[i] - mx) * (y[i] - my)
        sxx += (x[i] - mx) * (x[i] - mx)
        syy += (y[i] - my) * (y[i] - my)
    }
    guard sxx > 0, syy > 0 else { return nil }
    return sxy / (sxx * syy).squareRoot()
}
