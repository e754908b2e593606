// What the verdict's intervals rest on: every result's predicted class per example (`hcore eval
// --per-example`), joined with the gold labels and subcases of the dataset files the document names.
import Checkpoint
import Eval
import Foundation
import Model

struct PerPairData {
    /// Per result: whether it got each pair of the four plotted subcases right (in `groups`' indexing).
    var plottedCorrect: [String: [Bool]]
    /// Pair indices (into `plottedCorrect`'s rows) of each plotted subcase present, in `groupSizes`' order.
    var groups: [[Int]]
    var groupSizes: [(String, Int)]
    /// Per result: its predicted class on every in-domain example.
    var idPredictions: [String: [Int]]

    /// nil when the document carries no per-example predictions, or its plotted set's file cannot be read
    /// as it was evaluated (said through `warn`).
    init?(_ doc: EvalDocument, keys: ReportKeys, model: BertModel, warn: (String) -> Void) throws {
        guard let plottedKey = keys.plotted,
            let entry = doc.datasets.first(where: { $0.key == plottedKey }),
            doc.results.contains(where: { $0.metrics[plottedKey]?.predictedClasses != nil })
        else { return nil }
        let C = model.config.numLabels
        guard let ds = Self.dataset(entry, warn: warn) else { return nil }
        let mapping = try LabelMapping.make(for: ds, modelLabels: model.config.labels)
        let (gold, predictedClass) = mapping.indices(for: ds.examples)
        guard let gold else {
            warn("\(entry.path): some pairs have no gold label; the verdict's intervals need every one")
            return nil
        }
        let kept = ds.examples.indices.filter { plottedHANSSubcases.contains(ds.examples[$0].subcase ?? "") }
        var position: [Int: Int] = [:]
        for (k, i) in kept.enumerated() { position[i] = k }
        groups = []
        groupSizes = []
        for c in plottedHANSSubcases {
            let g = kept.filter { ds.examples[$0].subcase == c }.map { position[$0]! }
            if !g.isEmpty {
                groups.append(g)
                groupSizes.append((c, g.count))
            }
        }
        plottedCorrect = [:]
        idPredictions = [:]
        let idEntry = doc.datasets.first { $0.key == keys.id }
        for r in doc.results {
            guard
                let p = try r.metrics[plottedKey]?.predicted(
                    examples: entry.examples, classes: C, path: "the eval document (\(r.subnetwork), \(plottedKey))")
            else { continue }
            plottedCorrect[r.subnetwork] = kept.map { predictedClass[p[$0]] == gold[$0] }
            if let idEntry,
                let q = try r.metrics[keys.id]?.predicted(
                    examples: idEntry.examples, classes: C, path: "the eval document (\(r.subnetwork), \(keys.id))")
            {
                idPredictions[r.subnetwork] = q
            }
        }
    }

    /// The evaluated file, when it is still there and holds what was evaluated.
    static func dataset(_ entry: EvalDocument.DatasetEntry, warn: (String) -> Void) -> Dataset? {
        guard let format = DataFormat(rawValue: entry.format),
            let ds = try? Dataset.load(entry.path, format: format)
        else {
            warn("\(entry.path) (the document's \(entry.key)) cannot be read; the verdict's intervals need it")
            return nil
        }
        guard ds.count == entry.examples else {
            warn(
                "\(entry.path) holds \(ds.count) pairs where \(entry.examples) were evaluated (a sample?); the verdict's intervals need the whole file evaluated"
            )
            return nil
        }
        return ds
    }

    /// Share of in-domain examples on which `name` predicts what the full model predicts.
    func agreement(_ name: String) -> Double? {
        guard let mine = idPredictions[name], let full = idPredictions["full"], !full.isEmpty else { return nil }
        return Double(zip(mine, full).filter { $0 == $1 }.count) / Double(full.count)
    }

    /// The pair table of `names` (each must have per-example predictions).
    func table(_ names: [String]) throws -> PairTable? {
        guard names.allSatisfy({ plottedCorrect[$0] != nil }) else { return nil }
        return try PairTable(names: names, correct: names.map { plottedCorrect[$0]! }, groups: groups)
    }
}
