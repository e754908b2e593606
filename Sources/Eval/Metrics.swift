// Metrics of the paper's tables: accuracy; for HANS the 6 cells heuristic × gold label and the 30
// subcases (neutral and contradiction predictions count as non-entailment); F1 for paraphrase sets;
// confusion matrices.
import Checkpoint
import Foundation

/// The HANS subcases the paper's MNLI figures plot (SO-Swap, Prep [LO]; Embed-If, Embed-Verb [C]), as the HANS
/// file spells them (../shared/reference/README.md; the reference's keys write `/` as `-`).
public let plottedHANSSubcases = [
    "ln_subject/object_swap", "ln_preposition", "cn_embedded_under_if", "cn_embedded_under_verb",
]

/// A subcase as the paper's figures name it (SO-Swap, Prep, Embed-If, Embed-Verb), else as the file does.
public func paperSubcaseName(_ subcase: String) -> String {
    let names = ["SO-Swap", "Prep", "Embed-If", "Embed-Verb"]
    return plottedHANSSubcases.firstIndex(of: subcase).map { names[$0] } ?? subcase
}

/// How a dataset's gold labels and the model's predicted classes are compared.
public struct LabelMapping: Sendable {
    /// Gold labels as scoring-class indices (nil unless every example has a known one), and each model
    /// class's scoring index: what accuracy needs when the model's labels collapse (HANS).
    public func indices(for examples: [Example]) -> (gold: [Int]?, predicted: [Int]) {
        let predictedIndex = predicted.map { classes.firstIndex(of: $0)! }
        let gold = examples.map(goldClass)
        return (gold.contains(nil) ? nil : gold.map { $0! }, predictedIndex)
    }

    /// An example's gold label as a scoring-class index; nil when it has none this mapping scores.
    public func goldClass(of example: Example) -> Int? {
        example.label.flatMap { gold[$0] }.flatMap { classes.firstIndex(of: $0) }
    }

    /// Gold label string → class name used for scoring.
    public let gold: [String: String]
    /// Model class index → class name used for scoring.
    public let predicted: [String]
    /// Scoring class names, in order (rows/columns of the confusion matrix).
    public let classes: [String]
    /// The class F1 is reported for (paraphrase sets), if any.
    public let positive: String?

    /// HANS: entailment vs non-entailment; every non-entailment model label collapses.
    /// MNLI-style: gold names match the model's id2label names (case-insensitive).
    /// QQP/PAWS: gold "0"/"1" are class indices of a 2-label model.
    public static func make(for dataset: Dataset, modelLabels: [String]) throws -> LabelMapping {
        let lower = modelLabels.map { $0.lowercased() }
        switch dataset.format {
        case .hans:
            guard let e = lower.firstIndex(of: "entailment") else {
                throw DataError.badFile(
                    path: dataset.path,
                    reason: "HANS needs a model with an 'entailment' label; its labels are \(modelLabels)")
            }
            return LabelMapping(
                gold: ["entailment": "entailment", "non-entailment": "non-entailment"],
                predicted: lower.indices.map { $0 == e ? "entailment" : "non-entailment" },
                classes: ["entailment", "non-entailment"], positive: nil)
        case .qqp, .paws:
            guard modelLabels.count == 2 else {
                throw DataError.badFile(
                    path: dataset.path, reason: "a paraphrase set needs a 2-label model; this one has \(modelLabels)")
            }
            return LabelMapping(
                gold: ["0": "0", "1": "1"], predicted: ["0", "1"], classes: ["0", "1"], positive: "1")
        default:
            var gold: [String: String] = [:]
            for l in Set(dataset.examples.compactMap(\.label)) {
                if let i = lower.firstIndex(of: l.lowercased()) {
                    gold[l] = lower[i]
                } else if let i = Int(l), i >= 0, i < modelLabels.count {
                    gold[l] = lower[i]
                } else {
                    throw DataError.badFile(
                        path: dataset.path,
                        reason: "gold label '\(l)' is not one of the model's labels \(modelLabels) nor a class index")
                }
            }
            return LabelMapping(
                gold: gold, predicted: lower, classes: lower, positive: lower.count == 2 ? lower[1] : nil)
        }
    }
}

extension LabelMapping {
    /// Each example's gold label as the model's class index (for cross-entropy); an example without a usable
    /// label names its file and line.
    public func classIndices(_ ds: Dataset) throws -> [Int] {
        try ds.examples.map { ex in
            guard let g = ex.label.flatMap({ gold[$0] }), let i = predicted.firstIndex(of: g) else {
                throw DataError.badRow(path: ds.path, line: ex.line, reason: "no usable gold label for cross-entropy")
            }
            return i
        }
    }
}

public struct Metrics: Sendable {
    public var count = 0
    public var correct = 0
    public var accuracy: Double { count == 0 ? 0 : Double(correct) / Double(count) }
    public var f1: Double?
    /// confusion[gold][predicted]
    public var confusion: [String: [String: Int]] = [:]
    /// Accuracy on the examples whose gold label is `gold` (nil when there are none).
    public func accuracy(onGold gold: String) -> Double? { goldAccuracy(confusion, gold: gold) }
    /// HANS: "heuristic/gold" → accuracy and counts; subcases likewise.
    public var cells: [(String, Double, Int)] = []
    public var subcases: [(String, Double, Int)] = []

    public static func compute(dataset: Dataset, predictions: [Int], mapping: LabelMapping) -> Metrics {
        var m = Metrics()
        var cell: [String: (Int, Int)] = [:]
        var sub: [String: (Int, Int)] = [:]
        var tp = 0
        var fp = 0
        var fn = 0
        for (ex, p) in zip(dataset.examples, predictions) {
            guard let g = ex.label.flatMap({ mapping.gold[$0] }) else { continue }
            let pred = mapping.predicted[p]
            m.count += 1
            let ok = pred == g
            if ok { m.correct += 1 }
            m.confusion[g, default: [:]][pred, default: 0] += 1
            if let pos = mapping.positive {
                if pred == pos && g == pos { tp += 1 } else if pred == pos { fp += 1 } else if g == pos { fn += 1 }
            }
            if let h = ex.heuristic {
                let key = "\(h)/\(g)"
                cell[key] = ((cell[key]?.0 ?? 0) + (ok ? 1 : 0), (cell[key]?.1 ?? 0) + 1)
            }
            if let s = ex.subcase {
                sub[s] = ((sub[s]?.0 ?? 0) + (ok ? 1 : 0), (sub[s]?.1 ?? 0) + 1)
            }
        }
        if mapping.positive != nil { m.f1 = tp == 0 ? 0 : 2 * Double(tp) / Double(2 * tp + fp + fn) }
        m.cells = cell.keys.sorted().map { ($0, Double(cell[$0]!.0) / Double(cell[$0]!.1), cell[$0]!.1) }
        m.subcases = sub.keys.sorted().map { ($0, Double(sub[$0]!.0) / Double(sub[$0]!.1), sub[$0]!.1) }
        return m
    }

    public func json(classes: [String]) -> JSONValue {
        var fields: [(String, JSONValue)] = [
            ("accuracy", .float(accuracy)), ("count", .int(count)), ("correct", .int(correct)),
        ]
        if let f1 { fields.append(("f1", .float(f1))) }
        if !cells.isEmpty {
            fields.append(
                (
                    "hans_cells",
                    .object(cells.map { ($0.0, .object([("accuracy", .float($0.1)), ("count", .int($0.2))])) })
                ))
        }
        if !subcases.isEmpty {
            fields.append(
                (
                    "hans_subcases",
                    .object(subcases.map { ($0.0, .object([("accuracy", .float($0.1)), ("count", .int($0.2))])) })
                ))
        }
        fields.append(
            (
                "confusion",
                .object(classes.map { g in (g, .object(classes.map { ($0, .int(confusion[g]?[$0] ?? 0)) })) })
            ))
        return .object(fields)
    }
}

/// Accuracy on the rows of `confusion` ([gold][predicted] counts) whose gold label is `gold`; nil when none.
func goldAccuracy(_ confusion: [String: [String: Int]], gold: String) -> Double? {
    guard let row = confusion[gold] else { return nil }
    let total = row.values.reduce(0, +)
    return total > 0 ? Double(row[gold] ?? 0) / Double(total) : nil
}
