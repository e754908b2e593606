// The other outputs of an evaluation: per-example predictions (JSON lines), a flat CSV, and the metrics a
// store keeps in each subnetwork's metadata.
import Checkpoint
import Foundation
import Store

/// One JSON line per subnetwork × dataset × example: {subnetwork, dataset, index, pred, label, logits}.
/// Needs results computed with `keepLogits`.
public func predictionLines(_ results: [TargetResult], datasets: [PreparedDataset], labels: [String]) -> [UInt8] {
    var out: [UInt8] = []
    for r in results {
        for (i, d) in datasets.enumerated() {
            for (k, l) in r.logits[i].enumerated() {
                let line = JSONValue.object([
                    ("subnetwork", .string(r.target.name)), ("dataset", .string(d.referenceKey)), ("index", .int(k)),
                    ("pred", .string(labels[r.predictions[i][k]])),
                    ("label", d.dataset.examples[k].label.map { .string($0) } ?? .null),
                    ("logits", .floats(l)),
                ]).compact
                out += Array(line.utf8) + [0x0A]
            }
        }
    }
    return out
}

/// subnetwork,sparsity,dataset,accuracy,f1,count — one row per subnetwork × dataset, then one per HANS
/// cell and subcase (dataset "hans/<key>").
public func metricsCSV(_ results: [TargetResult], datasets: [PreparedDataset]) -> [UInt8] {
    var rows = ["subnetwork,sparsity,dataset,accuracy,f1,count"]
    for r in results {
        let name = csvField(r.target.name)
        for (i, d) in datasets.enumerated() {
            let m = r.metrics[i]
            rows.append(
                "\(name),\(r.target.sparsity),\(csvField(d.referenceKey)),\(m.accuracy),\(m.f1.map { "\($0)" } ?? ""),\(m.count)"
            )
            for (key, acc, n) in m.cells + m.subcases {
                rows.append("\(name),\(r.target.sparsity),\(csvField(d.referenceKey + "/" + key)),\(acc),,\(n)")
            }
        }
    }
    return Array((rows.joined(separator: "\n") + "\n").utf8)
}

/// RFC 4180 quoting where needed.
func csvField(_ s: String) -> String {
    s.contains(",") || s.contains("\"") || s.contains("\n")
        ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
}

/// `eval/<dataset key>` = accuracy for every stored subnetwork among `results` (the full model excluded),
/// ready for `SubnetworkStore.updateMeta`. HANS sets add `eval/<key>/non-entailment` and `…/entailment`
/// (accuracy on the non-entailed and on the entailed pairs), `eval/<key>/<subcase>` for the paper's four plotted subcases and `eval/<key>/plotted`,
/// their mean — the measures the paper's OOD claims use.
public func metricsMeta(_ results: [TargetResult], datasets: [PreparedDataset]) -> [(
    name: String, meta: [(String, JSONValue)]
)] {
    results.filter { $0.target.masks != nil && $0.target.name != "full" }.map { r in
        (
            name: r.target.name,
            meta: datasets.enumerated().flatMap { (i, d) -> [(String, JSONValue)] in
                let m = r.metrics[i]
                let key = "eval/\(d.referenceKey)"
                var fields: [(String, JSONValue)] = [(key, .float(m.accuracy))]
                guard d.dataset.format == .hans else { return fields }
                if let a = m.accuracy(onGold: "non-entailment") { fields.append((key + "/non-entailment", .float(a))) }
                if let a = m.accuracy(onGold: "entailment") { fields.append((key + "/entailment", .float(a))) }
                let plotted = m.subcases.filter { plottedHANSSubcases.contains($0.0) }
                fields += plotted.map { (key + "/" + $0.0, .float($0.1)) }
                if plotted.count == plottedHANSSubcases.count {
                    fields.append((key + "/plotted", .float(plotted.map(\.1).reduce(0, +) / Double(plotted.count))))
                }
                return fields
            }
        )
    }
}

/// The side outputs of one evaluation: per-example predictions (JSON lines) and the CSV when asked, and with
/// `writeBack` each subnetwork's metrics into the store's metadata.
public func writeSideOutputs(
    _ results: [TargetResult], datasets: [PreparedDataset], labels: [String], predictions: String?, csv: String?,
    writeBack store: SubnetworkStore?, warn: (String) -> Void
) throws {
    if let predictions {
        try writeAtomically(predictionLines(results, datasets: datasets, labels: labels), to: predictions)
    }
    if let csv { try writeAtomically(metricsCSV(results, datasets: datasets), to: csv) }
    guard let store else { return }
    let updates = metricsMeta(results, datasets: datasets)
    try store.updateMeta(updates)
    warn("wrote metrics of \(updates.count) subnetworks back into \(store.path)")
}
