// Hugging Face `datasets` folders as hcore datasets: what the reference's scripts read (its
// data/datasets/paws-qqp and data/datasets/hans-cases, written by `save_to_disk`) and what a datasets cache
// holds. Accepted, by what the folder contains:
//   dataset_info.json + data-*.arrow      one dataset (its files in name order)
//   dataset_dict.json + one folder per split   its "validation" split (else its only one; say --data DIR/SPLIT)
//   folders that are datasets or dataset dicts  all of them, one after another (hans-cases: one case each),
//                                          except `og`: the reference keeps the original HANS set there beside
//                                          its 30 cases and skips it (give DIR/og to read it alone)
//   *.arrow files                          a cache folder: every file, in name order
// Columns as the reference names them: premise/hypothesis (HANS, MNLI), sentence1/sentence2 (PAWS, GLUE),
// question1/question2 (QQP), else the --text-key/--pair-key; `label` as the ClassLabel's name when
// dataset_info.json has names, else the integer; heuristic and subcase when present (HANS).
import Checkpoint
import Failures
import Foundation

extension Dataset {
    static func isDirectory(_ path: String) -> Bool {
        var dir: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &dir) && dir.boolValue
    }

    /// The Arrow files of a datasets folder (see the file comment), in reading order, with each one's dataset_info.json.
    /// The walk enters real subfolders only (a link to a folder is not followed, so it cannot loop or leave), reads
    /// each distinct file once, and refuses special files by name.
    static func arrowFiles(_ path: String, depth: Int = 0) throws -> [(file: String, info: String?)] {
        let (files, folders) = try InputFiles.entries(of: path)
        if files.contains("dataset_info.json") || files.contains(where: { $0.hasSuffix(".arrow") }) {
            let info = files.contains("dataset_info.json") ? path + "/dataset_info.json" : nil
            return files.filter { $0.hasSuffix(".arrow") && !$0.hasPrefix("cache-") }.map { (path + "/" + $0, info) }
        }
        if files.contains("dataset_dict.json") {
            guard
                let split = folders.contains("validation") ? "validation" : folders.count == 1 ? folders.first : nil
            else {
                throw DataError.badFile(
                    path: path,
                    reason:
                        "a dataset dict with splits \(folders) and no 'validation': name one, e.g. \(path)/\(folders.first ?? "train")"
                )
            }
            return try arrowFiles(path + "/" + split, depth: depth + 1)
        }
        guard depth < 3 else { return [] }
        return try folders.filter { $0 != "og" }.flatMap { try arrowFiles(path + "/" + $0, depth: depth + 1) }
    }

    /// A datasets folder read into examples (the file comment says which columns).
    static func loadArrowFolder(_ path: String, keys: Keys, skipBadRows: Bool, limit: Int?) throws -> Dataset {
        let files = try arrowFiles(path)
        guard !files.isEmpty else {
            throw DataError.badFile(
                path: path,
                reason:
                    "a folder without a Hugging Face dataset (no dataset_info.json, dataset_dict.json or .arrow files)")
        }
        var ds = Dataset(name: (path as NSString).lastPathComponent, path: path, format: .jsonl, examples: [])
        ds.skipBadRows = skipBadRows
        for (file, info) in files {
            if let limit, ds.examples.count >= limit { break }
            let table: ArrowTable
            table = try ArrowTable(bytes: try readDataFile(file), path: file)
            let labelNames = try info.map { try classLabelNames($0) } ?? nil
            ds.format = try ds.append(table, file: file, keys: keys, labelNames: labelNames, limit: limit)
        }
        return ds
    }

    /// `features.label.names` of a dataset_info.json (a ClassLabel), nil when the label is a plain value.
    static func classLabelNames(_ infoPath: String) throws -> [String]? {
        let info = try JSONValue.parse(String(decoding: try readDataFile(infoPath), as: UTF8.self), path: infoPath)
        return info.get("features")?.get("label")?.get("names")?.arrayValue?.compactMap(\.stringValue)
    }

    /// Rows of one table appended as examples; returns the format the columns imply.
    mutating func append(_ t: ArrowTable, file: String, keys: Keys, labelNames: [String]?, limit: Int?) throws
        -> DataFormat
    {
        func strings(_ names: [String?]) -> (String, [String?])? {
            for case let n? in names { if case .strings(let v)? = t.column(n) { return (n, v) } }
            return nil
        }
        guard let (textName, text) = strings(["premise", "sentence1", "question1", keys.text]) else {
            throw DataError.badFile(
                path: file,
                reason:
                    "no text column (premise, sentence1, question1 or the text key '\(keys.text)'); columns: \(t.names)"
            )
        }
        let pair = strings(["hypothesis", "sentence2", "question2", keys.pair])?.1
        let heuristic = strings(["heuristic"])?.1
        let subcase = strings(["subcase"])?.1
        // HANS's ClassLabel, as the hans dataset declares it, when a folder lacks its dataset_info.json.
        let labelNames = labelNames ?? (heuristic != nil ? ["entailment", "non-entailment"] : nil)
        let labels: [String?] = {
            switch t.column(keys.label ?? "label") {
            case .ints(let v)?:
                return v.map { i in
                    i.flatMap { i in i < 0 ? nil : labelNames.map { i < $0.count ? $0[i] : String(i) } ?? String(i) }
                }
            case .strings(let v)?: return v
            default: return [String?](repeating: nil, count: t.rows)
            }
        }()
        for r in 0..<t.rows {
            if let limit, examples.count >= limit { break }
            guard let s = text[r] else {
                try reject(r + 1, "\(file): row \(r) has no \(textName)")
                continue
            }
            examples.append(
                Example(
                    text: s, pair: pair?[r], label: labels[r], heuristic: heuristic?[r], subcase: subcase?[r],
                    line: r + 1))
        }
        if heuristic != nil { return .hans }
        switch textName {
        case "question1": return .qqp
        case "premise": return .mnli
        case "sentence1": return labelNames == nil ? .paws : .mnli
        default: return .jsonl
        }
    }
}
