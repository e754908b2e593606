// The reference repository's results files (data/eval/*.json), read into their four shapes. Accuracies are
// fractions; keys are the reference's spellings (README of ../shared/reference, and `ReferenceCases`).
//
//   flat          {"seed": ["original", "42", …], "sparsity": […], "<case>": […]}   row 0 = the full model
//   sweep         seed → target sparsity (integer percent, a string) → case → accuracy   (*-acc_vs_sparsity)
//   grid          seed → fine-tuning step → target sparsity → case → accuracy, −1.0 = missing run (*-sparsity-grid-acc)
//   curve         fine-tuning step → case → accuracy of the full model                  (*-acc_over_ft)
// An `hcore eval` document is read as its flat table (Eval/HeuristicCoreFormat.swift).
import Checkpoint
import Eval
import Failures
import Foundation

/// A results file that is not one of the shapes (exit 3), or a figure's input that lacks what it needs (exit 4).
public enum FiguresError: ClassifiedError {
    case badFile(String, String)
    case missing(String)
    public var kind: FailureKind {
        switch self {
        case .badFile: return .badInput
        case .missing: return .mismatch
        }
    }
    public var description: String {
        switch self {
        case .badFile(let path, let why): return "\(path): \(why)"
        case .missing(let why): return why
        }
    }
}

/// A flat table: one row per model, row 0 the full model.
public struct FlatResults: Sendable {
    public var seeds: [String]
    public var sparsity: [Double]
    public var columns: [(name: String, values: [Double])]
    public func column(_ name: String) -> [Double]? { columns.first { $0.name == name }?.values }
    public init(seeds: [String], sparsity: [Double], columns: [(name: String, values: [Double])]) {
        (self.seeds, self.sparsity, self.columns) = (seeds, sparsity, columns)
    }
}

/// case → accuracy
public typealias CaseAccuracies = [String: Double]

public enum ResultsFile: Sendable {
    case flat(FlatResults)
    case sweep([String: [Int: CaseAccuracies]])  // seed → target % → cases
    case grid([String: [Int: [Int: CaseAccuracies]]])  // seed → step → target % → cases
    case curve([Int: CaseAccuracies])  // step → cases

    public var shapeName: String {
        switch self {
        case .flat: return "flat table (seed, sparsity, one column per case)"
        case .sweep: return "seed → target sparsity → case"
        case .grid: return "seed → step → target sparsity → case"
        case .curve: return "step → case"
        }
    }

    public static func load(path: String) throws -> ResultsFile {
        let data = Data(try InputFiles.read(path))
        guard let text = String(data: data, encoding: .utf8) else { throw FiguresError.badFile(path, "not UTF-8 text") }
        let json = try JSONValue.parse(text, path: path)
        // An `hcore eval` document: its flat table (the full model first, the reference's spellings).
        if json.get("results") != nil, json.get("fingerprint") != nil {
            return try parse(try heuristicCoreDocument([try EvalDocument.read(path: path)], shape: .flat), path: path)
        }
        return try parse(json, path: path)
    }

    /// The shape is told by the nesting: a "seed" list → flat; otherwise the depth of objects above the numbers.
    public static func parse(_ v: JSONValue, path: String) throws -> ResultsFile {
        guard let top = v.objectValue, !top.isEmpty else {
            throw FiguresError.badFile(path, "expected a JSON object of results")
        }
        if let seeds = v.get("seed")?.arrayValue { return .flat(try parseFlat(top, seeds: seeds, path: path)) }
        let r = NestedResults(path: path)
        let (step, percent) = (0...1_000_000_000, 0...100)
        // Depth: how many object levels until numbers.
        var depth = 0
        var probe: JSONValue = v
        while let o = probe.objectValue {
            guard let first = o.first else {
                throw FiguresError.badFile(path, "an empty object where results were expected (depth \(depth))")
            }
            depth += 1
            probe = first.1
        }
        switch depth {
        case 2: return .curve(try r.intKeyed(v, "", step, "a step") { try r.cases($0, $1, missingAllowed: false) })
        case 3:
            return .sweep(
                try r.unique(
                    top.map { s, x in
                        (
                            s,
                            try r.intKeyed(x, s, percent, "a sparsity in percent") {
                                try r.cases($0, $1, missingAllowed: false)
                            }
                        )
                    }, ""))
        case 4:
            return .grid(
                try r.unique(
                    top.map { s, x in
                        (
                            s,
                            try r.intKeyed(x, s, step, "a step") {
                                try r.intKeyed($0, $1, percent, "a sparsity in percent") {
                                    try r.cases($0, $1, missingAllowed: true)
                                }
                            }
                        )
                    }, ""))
        default:
            throw FiguresError.badFile(
                path,
                "not one of the reference's results shapes (flat table, seed → sparsity → case, seed → step → sparsity → case, step → case)"
            )
        }
    }
}

/// The nested shapes' checks: accuracies are fractions (a grid marks a run it lacks with −1); keys are a step
/// (0…10⁹) or a sparsity in percent (0…100), each spelt once ("5" and "05" are one key).
struct NestedResults {
    let path: String
    func accuracy(_ x: JSONValue, _ at: String, missingAllowed: Bool) throws -> Double {
        guard let d = x.doubleValue else { throw FiguresError.badFile(path, "\(at): expected a number") }
        if missingAllowed && d == -1 { return d }
        return try Checked.finite(d, in: 0...1, "\(path): \(at) (an accuracy)")
    }
    func cases(_ v: JSONValue, _ at: String, missingAllowed: Bool) throws -> CaseAccuracies {
        guard let o = v.objectValue, !o.isEmpty else {
            throw FiguresError.badFile(path, "\(at): expected case → accuracy")
        }
        return try unique(o.map { k, x in (k, try accuracy(x, at + "/" + k, missingAllowed: missingAllowed)) }, at)
    }
    func intKeyed<T>(
        _ v: JSONValue, _ at: String, _ range: ClosedRange<Int>, _ what: String,
        _ inner: (JSONValue, String) throws -> T
    ) throws -> [Int: T] {
        guard let o = v.objectValue, !o.isEmpty else {
            throw FiguresError.badFile(path, "\(at.isEmpty ? "the file" : at): expected a non-empty object")
        }
        return try unique(
            o.map { k, x in
                (
                    try Checked.integer(k, in: range, "\(path): \(at)/\(k): the key (\(what))"),
                    try inner(x, at + "/" + k)
                )
            }, at)
    }
    func unique<K: Hashable, T>(_ pairs: [(K, T)], _ at: String) throws -> [K: T] {
        try Dictionary(
            pairs,
            uniquingKeysWith: { _, _ in
                throw FiguresError.badFile(path, "\(at): a key is spelt twice (e.g. 5 and 05)")
            })
    }
}

/// A flat table: every column one number per row (sparsity and accuracies fractions), row 0 the full model
/// ("original"), which the figures draw as the reference line.
func parseFlat(_ top: [(String, JSONValue)], seeds: [JSONValue], path: String) throws -> FlatResults {
    let names = seeds.map { $0.stringValue ?? $0.intValue.map(String.init) ?? "?" }
    guard names.first == "original" else {
        throw FiguresError.badFile(
            path, "row 0 must be the full model (seed \"original\"); the rows are \(names.prefix(4))…")
    }
    var flat = FlatResults(seeds: names, sparsity: [], columns: [])
    for (k, col) in top where k != "seed" {
        guard let values = col.arrayValue?.map(\.doubleValue), values.count == names.count else {
            throw FiguresError.badFile(path, "column '\(k)' must be \(names.count) numbers, one per seed")
        }
        let checked = try values.enumerated().map { i, x in
            guard let x else { throw FiguresError.badFile(path, "\(k)[\(i)]: expected a number") }
            return try Checked.finite(x, in: 0...1, "\(path): \(k)[\(i)] (a fraction)")
        }
        if k == "sparsity" { flat.sparsity = checked } else { flat.columns.append((k, checked)) }
    }
    return flat
}

/// The reference's case names and the paper's labels for them.
public enum ReferenceCases {
    /// The in-domain cases of each shape (flat tables use the dataset names, the others the GLUE split names).
    public static let mnliFlatID = ["mnli-matched", "mnli-mismatched"]
    public static let mnliSplitID = ["validation_matched", "validation_mismatched"]
    /// The four HANS subcases the MNLI figures plot, in the paper's order.
    public static let hansPlotted = [
        "lexical_overlap_ln_subject-object_swap", "lexical_overlap_ln_preposition",
        "constituent_cn_embedded_under_if", "constituent_cn_embedded_under_verb",
    ]
    public static let labels: [String: String] = [
        "mnli-matched": "MNLI (matched)", "mnli-mismatched": "MNLI (mis.)", "validation_matched": "MNLI (matched)",
        "validation_mismatched": "MNLI (mis.)", "lexical_overlap_ln_subject-object_swap": "SO-Swap [LO]",
        "lexical_overlap_ln_preposition": "Prep [LO]", "constituent_cn_embedded_under_if": "Embed-If [C]",
        "constituent_cn_embedded_under_verb": "Embed-Verb [C]", "qqp": "QQP", "paws-qqp": "PAWS-QQP",
        "paws-qqp_0": "PAWS-QQP (label 0)",
    ]
    public static func label(_ c: String) -> String { labels[c] ?? c }
    /// In-domain cases of a file, by the reference's names: the OOD cases are HANS subcases and PAWS
    /// (validation_*, mnli-*, qqp — and any other set that is neither a HANS subcase nor PAWS).
    public static func isInDomain(_ c: String) -> Bool {
        !["lexical_overlap_", "subsequence_", "constituent_", "paws-qqp"].contains { c.hasPrefix($0) }
    }
    /// The cases a figure of this file draws by default: the paper's (ID, then the plotted OOD cases).
    /// In a table of another task (an `hcore eval` document of the demo), the in-domain sets are the columns
    /// that are neither HANS subcases nor PAWS.
    public static func defaults(available: Set<String>) -> [String] {
        if available.contains("qqp") { return ["qqp", "paws-qqp_0"].filter(available.contains) }
        var id = (available.contains("validation_matched") ? mnliSplitID : mnliFlatID).filter(available.contains)
        if id.isEmpty, available.contains(where: hansPlotted.contains) {
            id = available.filter(isInDomain).sorted()
        }
        return id + hansPlotted.filter(available.contains)
    }
}
