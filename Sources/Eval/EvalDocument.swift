// The document `hcore eval` prints, `hcore demo` writes as eval.json, `hcore eval merge` combines and
// `hcore report` reads: which model, store, ablation and datasets, and per subnetwork its metrics on every
// dataset. It is Codable, so every reader gets it typed; keys are written sorted so two runs diff cleanly.
import Checkpoint
import Foundation
import Model

public struct EvalDocument: Codable, Sendable {
    public struct DatasetEntry: Codable, Sendable {
        /// `path`: absolute, so a report run from another folder finds the file the document evaluated.
        public var name: String, key: String, path: String, format: String
        public var examples: Int, skippedRows: Int, tokenizeSeconds: Double
        enum CodingKeys: String, CodingKey {
            case name, key, path, format, examples
            case skippedRows = "skipped_rows"
            case tokenizeSeconds = "tokenize_s"
        }
    }

    public struct Cell: Codable, Sendable {
        public var accuracy: Double, count: Int
    }

    /// One subnetwork's metrics on one dataset.
    public struct DatasetMetrics: Codable, Sendable {
        public var accuracy: Double, count: Int, correct: Int
        public var f1: Double?
        /// HANS: "heuristic/gold" cells and the 30 subcases.
        public var hansCells: [String: Cell]?
        public var hansSubcases: [String: Cell]?
        /// confusion[gold][predicted]
        public var confusion: [String: [String: Int]]
        /// With `hcore eval --per-example`: the model's predicted class of every example, in the dataset's
        /// order, one character each (0–9, then a–z): what the report's intervals are computed from.
        public var predictedClasses: String?
        enum CodingKeys: String, CodingKey {
            case accuracy, count, correct, f1, confusion
            case hansCells = "hans_cells"
            case hansSubcases = "hans_subcases"
            case predictedClasses = "predicted_classes"
        }

        public init(_ m: Metrics, classes: [String]) {
            accuracy = m.accuracy
            count = m.count
            correct = m.correct
            f1 = m.f1
            func table(_ rows: [(String, Double, Int)]) -> [String: Cell]? {
                rows.isEmpty
                    ? nil : Dictionary(uniqueKeysWithValues: rows.map { ($0.0, Cell(accuracy: $0.1, count: $0.2)) })
            }
            hansCells = table(m.cells)
            hansSubcases = table(m.subcases)
            confusion = Dictionary(
                uniqueKeysWithValues: classes.map { g in
                    (g, Dictionary(uniqueKeysWithValues: classes.map { ($0, m.confusion[g]?[$0] ?? 0) }))
                })
        }

        /// Accuracy on the examples whose gold label is `gold` (nil when there are none).
        public func accuracy(onGold gold: String) -> Double? { goldAccuracy(confusion, gold: gold) }

        static let classDigits = Array("0123456789abcdefghijklmnopqrstuvwxyz")

        /// Predicted classes as `predictedClasses` spells them; nil when a class has no digit (more than 36).
        static func spell(_ classes: [Int]) -> String? {
            guard classes.allSatisfy({ (0..<classDigits.count).contains($0) }) else { return nil }
            return String(classes.map { classDigits[$0] })
        }

        /// The predicted classes of `predictedClasses`, checked against the dataset's size and the model's
        /// class count; nil when the document has none.
        public func predicted(examples: Int, classes: Int, path: String) throws -> [Int]? {
            guard let text = predictedClasses else { return nil }
            let out = text.map { c in Self.classDigits.firstIndex(of: c) ?? -1 }
            guard out.count == examples, out.allSatisfy({ (0..<classes).contains($0) }) else {
                throw DataError.badFile(
                    path: path,
                    reason:
                        "predicted_classes holds \(out.count) entries for \(examples) examples, or a class outside 0..<\(classes)"
                )
            }
            return out
        }
    }

    public struct Result: Codable, Sendable {
        public var subnetwork: String, index: Int, seed: JSONValue
        public var sparsity: Double, seconds: Double, gflop: Double
        /// Keyed by the dataset's key (DatasetEntry.key).
        public var metrics: [String: DatasetMetrics]
        /// The threshold that made the soft masks binary (a threshold given, or a sweep's); absent otherwise.
        public var threshold: Float? = nil
        /// The rule that made the masks ("as stored", "deterministic (soft)", "deterministic, threshold T");
        /// absent for the full model.
        public var maskRule: String? = nil
        /// The fine-tuning step of a checkpoint (`hcore eval --checkpoints`), or the one a stored subnetwork was
        /// pruned from; absent otherwise.
        public var step: Int? = nil
        /// The target sparsity a stored subnetwork was pruned for (its metadata); absent otherwise.
        public var targetSparsity: Double? = nil
        enum CodingKeys: String, CodingKey {
            case subnetwork, index, seed, sparsity, seconds, gflop, metrics, threshold, step
            case targetSparsity = "target_sparsity"
            case maskRule = "mask_rule"
        }
    }

    public var model: String, fingerprint: String, store: String?
    /// none, zero or mean.
    public var ablation: String
    public var maskMode: String, maxLength: Int
    /// "i/n", or "merged".
    public var shard: String
    public var subnetworksTotal: Int
    public var datasets: [DatasetEntry]
    public var results: [Result]
    public var seconds: Double

    enum CodingKeys: String, CodingKey {
        case model, fingerprint, store, ablation, shard, datasets, results, seconds
        case maskMode = "mask_mode"
        case maxLength = "max_length"
        case subnetworksTotal = "subnetworks_total"
    }
}

extension EvalDocument {
    /// The document of one evaluation pass.
    public init(
        modelPath: String, fingerprint: String, store: String?, ablation: String, maskMode: String, maxLength: Int,
        shard: String,
        subnetworksTotal: Int, prepared: [PreparedDataset], results: [TargetResult], seconds: Double,
        perExample: Bool = false
    ) {
        self.init(
            model: modelPath, fingerprint: fingerprint, store: store, ablation: ablation, maskMode: maskMode,
            maxLength: maxLength,
            shard: shard, subnetworksTotal: subnetworksTotal,
            datasets: prepared.map { d in
                DatasetEntry(
                    name: d.dataset.name, key: d.referenceKey,
                    path: d.dataset.path.hasPrefix("<")
                        ? d.dataset.path : URL(fileURLWithPath: d.dataset.path).standardizedFileURL.path,
                    format: d.dataset.format.rawValue,
                    examples: d.dataset.count, skippedRows: d.dataset.skipped.count, tokenizeSeconds: d.tokenizeSeconds)
            },
            results: results.map { r in
                Result(
                    subnetwork: r.target.name, index: r.target.index, seed: r.target.seed, sparsity: r.target.sparsity,
                    seconds: r.seconds, gflop: r.flops / 1e9,
                    metrics: Dictionary(
                        uniqueKeysWithValues: prepared.enumerated().map { (i, d) in
                            var m = DatasetMetrics(r.metrics[i], classes: d.mapping.classes)
                            if perExample { m.predictedClasses = DatasetMetrics.spell(r.predictions[i]) }
                            return (d.referenceKey, m)
                        }), threshold: r.target.threshold, maskRule: r.target.maskRule?.description,
                    step: r.target.step,
                    targetSparsity: r.target.targetSparsity)
            },
            seconds: seconds)
    }

    /// Reads a document written by `hcore eval` or `hcore demo`.
    public static func read(path: String) throws -> EvalDocument { try decode(try readDataFile(path), path: path) }

    /// A document from its bytes (`read`'s work once the file is read; the fuzzers enter here).
    public static func decode(_ bytes: [UInt8], path: String) throws -> EvalDocument {
        do { return try JSONDecoder().decode(EvalDocument.self, from: Data(bytes)) } catch let error as DecodingError {
            throw DataError.badFile(path: path, reason: "not an `hcore eval` document: \(describe(error))")
        }
    }

    /// Pretty JSON with sorted keys, newline-terminated.
    public var encoded: [UInt8] {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        e.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        // Every field is a plain value; encoding cannot fail.
        return Array((try? e.encode(self)) ?? Data()) + [0x0A]
    }

    /// Combines the documents of sharded runs of one evaluation: same model, disjoint subnetworks.
    public static func merge(_ parts: [(path: String, document: EvalDocument)]) throws -> EvalDocument {
        guard var merged = parts.first?.document else {
            throw DataError.badFile(path: "-", reason: "no documents to merge")
        }
        var seen: [Int: String] = [:]
        for (path, doc) in parts {
            guard doc.fingerprint == merged.fingerprint else {
                throw ModelError.mismatch(
                    "\(path) evaluated model \(doc.fingerprint), \(parts[0].path) model \(merged.fingerprint)")
            }
            try agree(doc, merged, path, parts[0].path)
            for r in doc.results {
                if let other = seen.updateValue(path, forKey: r.index) {
                    throw DataError.badFile(
                        path: path,
                        reason:
                            "subnetwork index \(r.index) ('\(r.subnetwork)') is also in \(other); were two shards given twice?"
                    )
                }
            }
        }
        try checkComplete(parts)
        merged.results = parts.flatMap(\.document.results).sorted { $0.index < $1.index }
        merged.shard = "merged"
        merged.seconds = parts.reduce(0) { $0 + $1.document.seconds }
        return merged
    }
}

/// Shards of one evaluation agree on everything that changes a number: the model (its fingerprint), the
/// datasets (key, format, examples, rows skipped), the ablation, the mask rule, the truncation, the store and its
/// size.
private func agree(_ doc: EvalDocument, _ first: EvalDocument, _ path: String, _ firstPath: String) throws {
    guard doc.fingerprint == first.fingerprint else {
        throw ModelError.mismatch("\(path) evaluated model \(doc.fingerprint), \(firstPath) model \(first.fingerprint)")
    }
    func sets(_ d: EvalDocument) -> [String] { d.datasets.map { "\($0.key) (\($0.format), \($0.examples) examples)" } }
    let settings: [(String, String, String)] = [
        ("datasets", "\(sets(doc))", "\(sets(first))"), ("ablation", doc.ablation, first.ablation),
        ("mask mode", doc.maskMode, first.maskMode), ("max length", "\(doc.maxLength)", "\(first.maxLength)"),
        ("store", doc.store ?? "none", first.store ?? "none"),
        ("subnetworks in all", "\(doc.subnetworksTotal)", "\(first.subnetworksTotal)"),
    ]
    for (what, mine, theirs) in settings where mine != theirs {
        throw ModelError.mismatch("\(path) has \(what) \(mine), \(firstPath) \(theirs): not shards of one evaluation")
    }
}

/// Every shard i/n of the evaluation, each once.
private func checkComplete(_ parts: [(path: String, document: EvalDocument)]) throws {
    let shards = parts.map { p -> (path: String, i: Int, n: Int)? in
        let f = p.document.shard.split(separator: "/").compactMap { Int($0) }
        return f.count == 2 && f[1] >= 1 && (1...f[1]).contains(f[0]) ? (p.path, f[0], f[1]) : nil
    }
    guard let n = shards.first??.n, shards.allSatisfy({ $0?.n == n }) else {
        throw DataError.badFile(
            path: parts.map(\.path).joined(separator: ", "),
            reason: "are not shards i/n of one split (their shards: \(parts.map(\.document.shard)))")
    }
    var given: [Int: String] = [:]
    for case let s? in shards {
        if let other = given.updateValue(s.path, forKey: s.i) {
            throw DataError.badFile(path: s.path, reason: "is shard \(s.i)/\(n), as \(other) is")
        }
    }
    let missing = (1...n).filter { given[$0] == nil }
    guard missing.isEmpty else {
        throw DataError.badFile(
            path: parts.map(\.path).joined(separator: ", "),
            reason:
                "hold \(given.count) of \(n) shards; missing \(missing.map { "\($0)/\(n)" }.joined(separator: ", "))")
    }
}

private func describe(_ error: DecodingError) -> String {
    func path(_ c: DecodingError.Context) -> String { c.codingPath.map(\.stringValue).joined(separator: ".") }
    switch error {
    case .keyNotFound(let key, let c):
        return "missing \"\(key.stringValue)\"" + (c.codingPath.isEmpty ? "" : " in \(path(c))")
    case .typeMismatch(_, let c), .valueNotFound(_, let c): return "\(path(c)): \(c.debugDescription)"
    case .dataCorrupted(let c): return c.codingPath.isEmpty ? c.debugDescription : "\(path(c)): \(c.debugDescription)"
    @unknown default: return "\(error)"
    }
}
