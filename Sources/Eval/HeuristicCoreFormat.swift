// The reference repository's results files (its data/eval/*.json, from which the paper's figures are drawn),
// written from hcore's eval documents in each of their four shapes, with the reference's spellings:
//   flat              {"seed": ["original", "42", …], "sparsity": […], "<case>": […]}      (*-sp50.json)
//                     row 0 the full model; in-domain sets by name (mnli-matched, qqp), HANS subcases as
//                     <heuristic>_<subcase> with "-" for "/", paws-qqp and paws-qqp_0 (label-0 rows)
//   acc-vs-sparsity   seed → target % → case → accuracy; the full model at target 0   (*-acc_vs_sparsity.json)
//   sparsity-grid     seed → step → target % → case, −1.0 where a run is missing    (*-sparsity-grid-acc.json)
//   acc-over-ft       step → case → accuracy of the full model at each checkpoint   (*-acc_over_ft.json)
// The nested shapes name MNLI's in-domain sets as the GLUE splits (validation_matched, validation_mismatched).
// Seeds, target sparsities and steps come from the subnetworks' metadata (prune, the grid, import-heuristic-core).
import Checkpoint
import Failures
import Foundation

public enum HeuristicCoreShape: String, CaseIterable, Sendable {
    case flat
    case accVsSparsity = "acc-vs-sparsity"
    case sparsityGrid = "sparsity-grid"
    case accOverFT = "acc-over-ft"
}

/// A HANS subcase as the reference's files name it: `<heuristic>_<subcase>` with "-" for "/"
/// (`ln_subject/object_swap` → `lexical_overlap_ln_subject-object_swap`).
public func referenceHANSKey(_ subcase: String) -> String {
    "\(hansHeuristic(subcase))_\(subcase.replacingOccurrences(of: "/", with: "-"))"
}

/// The HANS heuristic a subcase belongs to, from its prefix (le_/ln_, se_/sn_, ce_/cn_).
func hansHeuristic(_ subcase: String) -> String {
    switch subcase.prefix(2) {
    case "le", "ln": return "lexical_overlap"
    case "se", "sn": return "subsequence"
    case "ce", "cn": return "constituent"
    default: return "hans"
    }
}

extension EvalDocument {
    /// Each result's accuracies as the reference names its cases, in dataset order.
    func referenceCases(_ r: Result, idNames: [String], splitNames: Bool) -> [(String, Double)] {
        var names = idNames[...]
        var out: [(String, Double)] = []
        for d in datasets {
            guard let m = r.metrics[d.key] else { continue }
            switch d.format {
            case "hans":
                for (subcase, cell) in (m.hansSubcases ?? [:]).sorted(by: { $0.key < $1.key }) {
                    out.append((referenceHANSKey(subcase), cell.accuracy))
                }
            case "paws":
                out.append(("paws-qqp", m.accuracy))
                if let zero = m.accuracy(onGold: "0") { out.append(("paws-qqp_0", zero)) }
            default:
                let name = names.popFirst() ?? d.key
                let split = ["mnli-matched": "validation_matched", "mnli-mismatched": "validation_mismatched"]
                out.append((splitNames ? split[name] ?? name : name, m.accuracy))
            }
        }
        return out
    }
}

func rounded(_ v: Double) -> JSONValue { .float((v * 1_000_000).rounded() / 1_000_000) }
func casesObject(_ cases: [(String, Double)]) -> JSONValue { .object(cases.map { ($0.0, rounded($0.1)) }) }

/// The target sparsity of a result in integer percent, as the reference's keys spell it.
func percentKey(_ t: Double, of name: String) throws -> String {
    String(try Checked.percent(t, "the target_sparsity of \(name)"))
}

/// `documents` in the reference's `shape` (see the file comment); `idNames` name the in-domain sets in order.
public func heuristicCoreDocument(_ documents: [EvalDocument], shape: HeuristicCoreShape, idNames: [String] = []) throws
    -> JSONValue
{
    let rows = documents.flatMap { doc in doc.results.map { (doc, $0) } }
    switch shape {
    case .flat: return try flatTable(documents, idNames: idNames)
    case .accOverFT: return try accuracyOverFineTuning(rows, idNames: idNames)
    case .accVsSparsity, .sparsityGrid: return try sparsityTable(rows, shape: shape, idNames: idNames)
    }
}

/// A result's seed as the reference's tables key it.
func referenceSeed(_ r: EvalDocument.Result) -> String {
    r.seed.stringValue ?? r.seed.intValue.map(String.init) ?? r.subnetwork
}

/// The flat table (*-sp50.json): column name → list, the full model's row first.
func flatTable(_ documents: [EvalDocument], idNames: [String]) throws -> JSONValue {
    guard documents.count == 1, let doc = documents.first else {
        throw SettingError("shape", "flat takes one evaluation: merge the shards' documents first")
    }
    guard let first = doc.results.first, first.subnetwork == "full" else {
        if doc.shard != "1/1" && doc.shard != "merged" {
            throw SettingError(
                "format",
                "heuristic-core needs the full model's row, which shard \(doc.shard) lacks (shard 1 has it): write the shards as JSON and merge them into this format"
            )
        }
        throw SettingError(
            "includeFull",
            "is needed: the heuristic-core format starts with the full model's row, so evaluate it too")
    }
    let table = doc.results.map { doc.referenceCases($0, idNames: idNames, splitNames: false) }
    var columns: [(String, JSONValue)] = [
        ("seed", .array(doc.results.map { $0.subnetwork == "full" ? "original" : .string(referenceSeed($0)) })),
        ("sparsity", .array(doc.results.map { .float(($0.sparsity * 10_000).rounded() / 10_000) })),
    ]
    for (k, name) in table[0].map(\.0).enumerated() {
        columns.append((name, .array(table.map { $0.count > k && $0[k].0 == name ? rounded($0[k].1) : .null })))
    }
    return .object(columns)
}

/// acc_over_ft: checkpoint step → case → accuracy of the full model.
func accuracyOverFineTuning(_ rows: [(EvalDocument, EvalDocument.Result)], idNames: [String]) throws -> JSONValue {
    let full = rows.filter { $0.1.step != nil && $0.1.targetSparsity == nil }
    guard !full.isEmpty else {
        throw SettingError("shape", "acc-over-ft needs the results of fine-tuning checkpoints")
    }
    return .object(
        full.sorted { $0.1.step! < $1.1.step! }.map {
            (String($0.1.step!), casesObject($0.0.referenceCases($0.1, idNames: idNames, splitNames: true)))
        })
}

/// acc_vs_sparsity (seed → target → cases) or the sparsity grid (seed → step → target → cases).
func sparsityTable(_ rows: [(EvalDocument, EvalDocument.Result)], shape: HeuristicCoreShape, idNames: [String]) throws
    -> JSONValue
{
    var cells: [String: [Int: [String: JSONValue]]] = [:]  // seed → step → target → cases
    var fullByStep: [Int: JSONValue] = [:]
    for (doc, r) in rows {
        let step = r.step ?? 0
        let cases = casesObject(doc.referenceCases(r, idNames: idNames, splitNames: true))
        if r.subnetwork == "full" {
            fullByStep[step] = cases
            continue
        }
        guard let target = r.targetSparsity else {
            throw DataError.badFile(
                path: r.subnetwork,
                reason: "has no target_sparsity in its metadata; add it (e.g. target_sparsity=0.5) when importing")
        }
        cells[referenceSeed(r), default: [:]][step, default: [:]][try percentKey(target, of: r.subnetwork)] = cases
    }
    guard !cells.isEmpty else {
        throw DataError.badFile(
            path: "the evaluation", reason: "has no subnetworks with a seed and a target sparsity to arrange")
    }
    if shape == .accVsSparsity {
        return .object(
            cells.keys.sorted().map { s in
                var targets = cells[s]!.values.reduce(into: [String: JSONValue]()) { $0.merge($1) { a, _ in a } }
                if let f = fullByStep.values.first, targets["0"] == nil { targets["0"] = f }
                return (s, .object(targets.keys.sorted { Int($0)! < Int($1)! }.map { ($0, targets[$0]!) }))
            })
    }
    // The grid: every seed × step × target seen; a missing cell is −1.0 for each case (the reference's mark).
    let steps = Set(cells.values.flatMap(\.keys)).sorted()
    let targets = Set(cells.values.flatMap { $0.values.flatMap(\.keys) }).sorted { Int($0)! < Int($1)! }
    let caseNames = cells.values.first!.values.first!.values.first!.objectValue!.map(\.0)
    let missing = JSONValue.object(caseNames.map { ($0, .float(-1.0)) })
    return .object(
        cells.keys.sorted().map { s in
            (
                s,
                .object(
                    steps.map { st in (String(st), .object(targets.map { t in (t, cells[s]?[st]?[t] ?? missing) }))
                    })
            )
        })
}

extension EvalDocument {
    /// What `hcore eval` and `hcore eval merge` print: the document itself (`json`), or the reference's
    /// results file in `shape` (`heuristic-core`).
    public static func output(_ docs: [EvalDocument], format: String, shape: String, idNames: [String]) throws
        -> [UInt8]
    {
        let s = try checkOutput(format: format, shape: shape)
        if format == "heuristic-core" {
            return Array((try heuristicCoreDocument(docs, shape: s, idNames: idNames).pretty + "\n").utf8)
        }
        guard docs.count == 1 else {
            throw SettingError(
                "format", "json prints one document: use heuristic-core for several, or merge the shards first")
        }
        return docs[0].encoded
    }

    /// The format and shape flags, checked before any work.
    @discardableResult
    public static func checkOutput(format: String, shape: String) throws -> HeuristicCoreShape {
        guard ["json", "heuristic-core"].contains(format) else {
            throw SettingError("format", "must be json or heuristic-core, not '\(format)'")
        }
        guard let s = HeuristicCoreShape(rawValue: shape) else {
            throw SettingError(
                "shape",
                "must be one of \(HeuristicCoreShape.allCases.map(\.rawValue).joined(separator: ", ")), not '\(shape)'")
        }
        return s
    }
}
