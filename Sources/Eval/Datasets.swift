// Evaluation and training sets in their public formats, read exactly:
//   HANS  heuristics_{evaluation,train}_set.txt — TSV with header: gold_label, sentence1, sentence2,
//         pairID, heuristic, subcase, template (and the parse columns, ignored)
//   MNLI  GLUE dev_matched.tsv / dev_mismatched.tsv / train.tsv — TSV, sentence1, sentence2, gold_label
//   QQP   GLUE dev.tsv / train.tsv — TSV, question1, question2, is_duplicate
//   PAWS  PAWS-QQP dev_and_test.tsv — TSV, sentence1, sentence2, label
//   JSONL one object per line; CSV with a header row — keys chosen by --text-key/--pair-key/--label-key
// GLUE TSVs are split on tabs only, with no quote processing (as GLUE's own readers do). Files ending
// in .zst are decompressed transparently. A bad row names its file and line.
import Checkpoint
import Failures
import Foundation

public struct Example: Sendable, Equatable {
    public var text: String
    public var pair: String?
    /// Gold label as written in the file ("entailment", "non-entailment", "1"…), nil if absent.
    public var label: String?
    /// HANS: heuristic and subcase; anything else a format carries.
    public var heuristic: String?
    public var subcase: String?
    /// 1-based line in the source file.
    public var line: Int

    public init(
        text: String, pair: String? = nil, label: String? = nil, heuristic: String? = nil, subcase: String? = nil,
        line: Int = 0
    ) {
        self.text = text
        self.pair = pair
        self.label = label
        self.heuristic = heuristic
        self.subcase = subcase
        self.line = line
    }
}

public enum DataFormat: String, CaseIterable, Sendable {
    case auto, hans, mnli, qqp, paws, jsonl, csv
}

public enum DataError: ClassifiedError {
    public var kind: FailureKind { .badInput }
    case badRow(path: String, line: Int, reason: String)
    case badFile(path: String, reason: String)

    public var description: String {
        switch self {
        case .badRow(let path, let line, let reason):
            return "\(path):\(line): \(reason)"
        case .badFile(let path, let reason): return "\(path): \(reason)"
        }
    }
}

public struct Dataset: Sendable {
    public var name: String
    public var path: String
    public var format: DataFormat
    public var examples: [Example]
    /// Rows skipped with --skip-bad-rows, as messages naming file and line.
    public var skipped: [String] = []

    public var count: Int { examples.count }
    public var isHANS: Bool { format == .hans }

    public init(name: String, path: String, format: DataFormat, examples: [Example]) {
        self.name = name
        self.path = path
        self.format = format
        self.examples = examples
    }

    public struct Keys: Sendable {
        public var text = "text", pair: String? = "text_pair", label: String? = "label"
        public init(text: String = "text", pair: String? = "text_pair", label: String? = "label") {
            self.text = text
            self.pair = pair
            self.label = label
        }
    }

    public static func load(
        _ path: String, format: DataFormat = .auto, keys: Keys = Keys(),
        skipBadRows: Bool = false, limit: Int? = nil
    ) throws -> Dataset {
        // a Hugging Face datasets folder
        if isDirectory(path) { return try loadArrowFolder(path, keys: keys, skipBadRows: skipBadRows, limit: limit) }
        return try parse(
            try readDataFile(path), path: path, format: format, keys: keys, skipBadRows: skipBadRows, limit: limit)
    }

    /// The first `n` examples of each HANS subcase (examples without one count as one group), in file order: the
    /// reference's -n, which caps each case.
    public func limitedPerSubcase(_ n: Int) -> Dataset {
        var seen: [String: Int] = [:]
        var out = self
        out.examples = examples.filter { e in
            let key = e.subcase ?? ""
            seen[key, default: 0] += 1
            return seen[key]! <= n
        }
        return out
    }

    /// A data file's decompressed bytes, read as if from `path` (whose name picks the format under .auto
    /// and names the file in errors): the embedded HANS files take this way.
    public static func parse(
        _ bytes: [UInt8], path: String, format: DataFormat = .auto, keys: Keys = Keys(),
        skipBadRows: Bool = false, limit: Int? = nil
    ) throws -> Dataset {
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw DataError.badFile(path: path, reason: "not UTF-8 text")
        }
        let base = (path as NSString).lastPathComponent.replacingOccurrences(of: ".zst", with: "")
        var fmt = format
        if fmt == .auto { fmt = detect(base: base, header: String(text.prefix { $0 != "\n" && $0 != "\r\n" })) }
        var ds = Dataset(name: base, path: path, format: fmt, examples: [])
        ds.skipBadRows = skipBadRows
        switch fmt {
        case .jsonl: try ds.readJSONL(bytes, keys: keys, limit: limit)
        case .csv: try ds.readCSV(text, keys: keys, limit: limit)
        default: try ds.readTSV(bytes, limit: limit)
        }
        return ds
    }

    /// With --skip-bad-rows a malformed row is noted in `skipped`; without, it stops the load.
    var skipBadRows = false

    mutating func reject(_ line: Int, _ reason: String) throws {
        guard skipBadRows else { throw DataError.badRow(path: path, line: line, reason: reason) }
        skipped.append("\(path):\(line): \(reason)")
    }

    /// One JSON object per line: the text, pair and label under `keys`, optional heuristic and subcase.
    private mutating func readJSONL(_ bytes: [UInt8], keys: Keys, limit: Int?) throws {
        for (i, row) in splitLines(bytes).enumerated() {
            let l = String(decoding: bytes[row], as: UTF8.self)
            if let limit, examples.count >= limit { break }
            if l.allSatisfy({ $0 == " " || $0 == "\t" }) { continue }
            guard let obj = (try? JSONSerialization.jsonObject(with: Data(l.utf8))) as? [String: Any] else {
                try reject(i + 1, "not a JSON object")
                continue
            }
            guard let t = obj[keys.text] as? String else {
                try reject(i + 1, "no string field '\(keys.text)'")
                continue
            }
            var ex = Example(text: t, line: i + 1)
            if let pk = keys.pair, let p = obj[pk] {
                if let ps = p as? String {
                    ex.pair = ps
                } else if !(p is NSNull) {
                    try reject(i + 1, "'\(pk)' is not a string")
                    continue
                }
            }
            if let lk = keys.label, let v = obj[lk], !(v is NSNull) { ex.label = "\(v)" }
            ex.heuristic = obj["heuristic"] as? String
            ex.subcase = obj["subcase"] as? String
            examples.append(ex)
        }
    }

    /// A header row naming the columns, then one example per row (RFC 4180 quoting).
    private mutating func readCSV(_ text: String, keys: Keys, limit: Int?) throws {
        let rows = try parseCSV(text, path: path)
        guard let header = rows.first else { return }
        guard let ti = header.firstIndex(of: keys.text) else {
            throw DataError.badFile(path: path, reason: "no column '\(keys.text)' in header \(header)")
        }
        let pi = keys.pair.flatMap { header.firstIndex(of: $0) }
        let li = keys.label.flatMap { header.firstIndex(of: $0) }
        for (line, r) in rows.dropFirst().enumerated() {
            if let limit, examples.count >= limit { break }
            guard r.count == header.count else {
                try reject(line + 2, "\(r.count) fields, header has \(header.count)")
                continue
            }
            examples.append(Example(text: r[ti], pair: pi.map { r[$0] }, label: li.map { r[$0] }, line: line + 2))
        }
    }

    /// GLUE / HANS / PAWS tab-separated files, split on bytes (a 15 MB HANS file would take seconds through
    /// String APIs); the columns by the format's names, the labels checked against the format's.
    private mutating func readTSV(_ bytes: [UInt8], limit: Int?) throws {
        let fmt = format
        let rows = splitLines(bytes)
        guard let headerRow = rows.first else { return }
        let header = splitTabs(bytes, headerRow).map { String(decoding: bytes[$0], as: UTF8.self) }
        func col(_ names: [String]) throws -> Int {
            for n in names { if let i = header.firstIndex(of: n) { return i } }
            throw DataError.badFile(
                path: path,
                reason:
                    "\(fmt.rawValue) file without a '\(names[0])' column (header: \(header.joined(separator: ", ")))")
        }
        let (ti, pi, li): (Int, Int, Int)
        var hi: Int? = nil
        var si: Int? = nil
        switch fmt {
        case .hans:
            ti = try col(["sentence1"])
            pi = try col(["sentence2"])
            li = try col(["gold_label"])
            hi = header.firstIndex(of: "heuristic")
            si = header.firstIndex(of: "subcase")
        case .mnli:
            ti = try col(["sentence1"])
            pi = try col(["sentence2"])
            li = try col(["gold_label"])
        case .qqp:
            ti = try col(["question1"])
            pi = try col(["question2"])
            li = try col(["is_duplicate"])
        default:
            ti = try col(["sentence1"])
            pi = try col(["sentence2"])
            li = try col(["label"])
        }
        let needed = [ti, pi, li, hi ?? 0, si ?? 0].max()!
        for (i, row) in rows.enumerated().dropFirst() {
            if let limit, examples.count >= limit { break }
            if row.isEmpty { continue }
            let f = splitTabs(bytes, row)
            func field(_ k: Int) -> String { String(decoding: bytes[f[k]], as: UTF8.self) }
            guard f.count > needed else {
                try reject(i + 1, "\(f.count) tab-separated fields, expected at least \(needed + 1)")
                continue
            }
            let label = field(li)
            if fmt == .mnli && !["entailment", "neutral", "contradiction"].contains(label) {
                try reject(i + 1, "gold_label '\(label)' is not entailment/neutral/contradiction")
                continue
            }
            if fmt == .hans && !["entailment", "non-entailment"].contains(label) {
                try reject(i + 1, "gold_label '\(label)' is not entailment/non-entailment")
                continue
            }
            if (fmt == .qqp || fmt == .paws) && label != "0" && label != "1" {
                try reject(i + 1, "label '\(label)' is not 0 or 1")
                continue
            }
            examples.append(
                Example(
                    text: field(ti), pair: field(pi), label: label,
                    heuristic: hi.map(field), subcase: si.map(field), line: i + 1))
        }
    }

    static func detect(base: String, header: String) -> DataFormat {
        if base.hasSuffix(".jsonl") || base.hasSuffix(".json") { return .jsonl }
        if base.hasSuffix(".csv") { return .csv }
        let cols = Set(header.split(separator: "\t").map(String.init))
        if cols.contains("heuristic") && cols.contains("sentence1") { return .hans }
        if cols.contains("question1") && cols.contains("is_duplicate") { return .qqp }
        if cols.contains("gold_label") && cols.contains("sentence1") { return .mnli }
        if cols.contains("sentence1") && cols.contains("label") { return .paws }
        return .jsonl
    }
}

/// Line ranges of `bytes` (without "\n" or "\r\n"); no empty last line.
func splitLines(_ bytes: [UInt8]) -> [Range<Int>] {
    var out: [Range<Int>] = []
    var start = 0
    for i in bytes.indices where bytes[i] == 0x0A {
        out.append(start..<(i > start && bytes[i - 1] == 0x0D ? i - 1 : i))
        start = i + 1
    }
    if start < bytes.count { out.append(start..<bytes.count) }
    return out
}

/// Tab-separated field ranges within one line.
func splitTabs(_ bytes: [UInt8], _ line: Range<Int>) -> [Range<Int>] {
    var out: [Range<Int>] = []
    var start = line.lowerBound
    for i in line where bytes[i] == 0x09 {
        out.append(start..<i)
        start = i + 1
    }
    out.append(start..<line.upperBound)
    return out
}

/// RFC 4180 CSV: quoted fields may hold commas, quotes ("") and newlines.
func parseCSV(_ text: String, path: String) throws -> [[String]] {
    var rows: [[String]] = []
    var row: [String] = []
    var field = ""
    var inQuotes = false
    var it = text.unicodeScalars.makeIterator()
    var pending: Unicode.Scalar? = nil
    while let c = pending ?? it.next() {
        pending = nil
        if inQuotes {
            if c == "\"" {
                if let n = it.next() {
                    if n == "\"" {
                        field.unicodeScalars.append("\"")
                    } else {
                        inQuotes = false
                        pending = n
                    }
                } else {
                    inQuotes = false
                }
            } else {
                field.unicodeScalars.append(c)
            }
        } else if c == "\"" && field.isEmpty {
            inQuotes = true
        } else if c == "," {
            row.append(field)
            field = ""
        } else if c == "\n" {
            row.append(field)
            field = ""
            rows.append(row)
            row = []
        } else if c != "\r" {
            field.unicodeScalars.append(c)
        }
    }
    if inQuotes { throw DataError.badFile(path: path, reason: "unterminated quoted field") }
    if !field.isEmpty || !row.isEmpty {
        row.append(field)
        rows.append(row)
    }
    return rows
}

extension Dataset {
    /// A dataset that must not be empty (an empty one would score "accuracy 0").
    public static func loadNonEmpty(_ path: String, limit: Int?) throws -> Dataset {
        let ds = try Dataset.load(path, limit: limit)
        guard ds.count > 0 else { throw DataError.badFile(path: path, reason: "has no examples") }
        return ds
    }
}
