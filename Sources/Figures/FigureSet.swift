// What `hcore figures` draws from a set of results files: each file's own figures by its shape, an effective-
// size figure for each grid that has a fine-tuning curve of the same task, and a keep-count heatmap of two
// subnetwork sets of a store. File names follow the reference's data/plots/.
import Checkpoint
import Failures
import Foundation
import Store

public struct FigureOptions: Sendable {
    /// Results files to draw from.
    public var files: [String] = []
    /// A store and two metadata conditions choosing the heatmap's two sets of subnetworks.
    public var store: String?, heatmap: [String] = []
    /// Cases of the violins and bars (default: the paper's, `ReferenceCases.defaults`).
    public var cases: [String]?
    /// In-domain and out-of-domain cases of the accuracy-vs-sparsity and effective-size figures.
    public var idCases: [String]?, oodCases: [String]?
    public var margin = 0.03
    public var seed: UInt64 = 0
    public init() {}
}

/// The task prefix of a results file name: "mnli-sp50.json" → "mnli".
func taskPrefix(_ path: String) -> String { String(stem(path).split(separator: "-").first ?? "") }
func stem(_ path: String) -> String { ((path as NSString).lastPathComponent as NSString).deletingPathExtension }

public func drawFigures(_ inputs: [(path: String, file: ResultsFile)], options o: FigureOptions) throws -> [Figure] {
    var figures: [Figure] = []
    func split(_ available: Set<String>) -> (id: [String], ood: [String]) {
        let d = ReferenceCases.defaults(available: available)
        return (
            o.idCases ?? d.filter(ReferenceCases.isInDomain), o.oodCases ?? d.filter { !ReferenceCases.isInDomain($0) }
        )
    }
    for (path, file) in inputs {
        let name = stem(path)
        switch file {
        case .flat(let t):
            let cases = o.cases ?? ReferenceCases.defaults(available: Set(t.columns.map(\.name)))
            guard !cases.isEmpty else {
                throw FiguresError.missing(
                    "\(path): none of the paper's cases; name the cases to draw (it has \(t.columns.map(\.name).prefix(8).joined(separator: ", "))…)"
                )
            }
            figures.append(try violinFigure(t, cases: cases, name: name + "-vplot"))
            figures.append(try barFigure(t, cases: cases, name: name + "-bar"))
        case .sweep(let s):
            let (id, ood) = split(Set(s.values.flatMap { $0.values.flatMap(\.keys) }))
            figures.append(try accuracyVsSparsityFigure(s, idCases: id, oodCases: ood, name: name, seed: o.seed))
        case .grid(let g):
            let curves = inputs.filter {
                if case .curve = $0.file { return true }
                return false
            }
            guard
                let curveInput = curves.first(where: { taskPrefix($0.path) == taskPrefix(path) })
                    ?? (curves.count == 1 ? curves.first : nil),
                case .curve(let curve) = curveInput.file
            else {
                throw FiguresError.missing(
                    "\(path): the effective size needs the full model's fine-tuning curve too (the reference's \(taskPrefix(path))-acc_over_ft.json)"
                )
            }
            let (id, ood) = split(Set(curve.values.flatMap(\.keys)))
            figures.append(
                try effectiveSizeFigure(
                    grid: g, curve: curve, cases: id + ood, margin: o.margin,
                    name: taskPrefix(path) + "-effective-size", seed: o.seed))
        case .curve:
            continue  // drawn with its grid
        }
    }
    return figures
}

/// Every figure the options ask for: the files' (`drawFigures`) and the store's heatmap.
public func drawFigures(_ o: FigureOptions, warn: @escaping (String) -> Void) throws -> [Figure] {
    var figures = try drawFigures(try o.files.map { ($0, try ResultsFile.load(path: $0)) }, options: o)
    if let store = o.store {
        guard o.heatmap.count == 2 else {
            throw SettingError("heatmap", "needs two sets of subnetworks, one condition each")
        }
        let f = try o.heatmap.map {
            try SubnetworkFilter(tag: nil, conditions: [$0], minSparsity: nil, maxSparsity: nil, names: nil)
        }
        let s = try SubnetworkStore.open(path: store)
        if let note = s.recoveryNote { warn("warning: \(store): \(note)") }
        figures.append(try storeHeatmap(store: s, first: f[0], second: f[1], labels: (o.heatmap[0], o.heatmap[1])))
    }
    guard !figures.isEmpty else {
        throw SettingError(
            "files", "are missing: nothing to draw (give results files, or a store with two heatmap sets)")
    }
    return figures
}

/// Each figure as DIR/NAME.svg (the folder created).
public func writeFigures(_ figures: [Figure], to folder: String) throws {
    try makeFolder(folder)
    for f in figures { try writeAtomically(Array(f.canvas.svg.utf8), to: folder + "/" + f.name + ".svg") }
}

/// The keep-count heatmap of the heads kept by two filtered sets of a store's subnetworks.
public func storeHeatmap(
    store: SubnetworkStore, first: SubnetworkFilter, second: SubnetworkFilter, labels: (String, String)
) throws -> Figure {
    let heads = store.layout.layers * store.layout.heads
    func masks(_ f: SubnetworkFilter, _ label: String) throws -> [[Bool]] {
        let subs = try f.apply(store)
        guard !subs.isEmpty else { throw FiguresError.missing("no subnetwork of \(store.path) matches \(label)") }
        return subs.map { s in (0..<heads).map { s.mask[$0] != 0 } }
    }
    return try keepCountHeatmap(
        first: try masks(first, labels.0), second: try masks(second, labels.1), labels: labels,
        name: stem(store.path) + "-frequencies-heatmap")
}
