// A subnetwork as JSON, the form `hcore store add` reads and `store show` / `store export` print:
//   {"name", "heads": [[L rows of H values]], "mlps": [L values], "log_alpha": [U values]?, "meta": {…}?}
// Unit order everywhere: heads layer-major, then one MLP per layer (StoreLayout).
import Checkpoint
import Failures
import Foundation

extension StoredSubnetwork {
    /// Fraction of units pruned.
    public var sparsity: Double {
        1 - Double(mask.reduce(0) { $0 + Int($1) }) / Double(max(1, mask.count))
    }

    /// Reads one subnetwork object. `source` names where it came from (file and line) in errors; masks must be
    /// binary unless `threshold` is given (values above it are kept). `created` stamps a subnetwork whose meta has
    /// no "created" (default: now), evaluated only then; a file of many passes one stamp for all, since a date
    /// formatter costs more than the parse.
    public init(
        json obj: JSONValue, layout: StoreLayout, threshold: Float?, defaultName: String? = nil, source: String,
        created: @autoclosure () -> String = ISO8601DateFormatter().string(from: Date())
    ) throws {
        func bad(_ reason: String) -> CheckpointError { .malformed(path: source, offset: nil, reason: reason) }
        if let threshold, !(threshold.isFinite && (0...1).contains(threshold)) {
            throw SettingError("threshold", "must be a number in [0, 1], got \(threshold)")
        }
        func wrongShape(_ reason: String) -> CheckpointError { .mismatch(path: source, reason: reason) }
        guard let name = obj.get("name")?.stringValue ?? defaultName else { throw bad("no \"name\"") }
        guard let heads = obj.get("heads")?.arrayValue, heads.count == layout.layers,
            let mlps = obj.get("mlps")?.arrayValue, mlps.count == layout.layers
        else {
            throw wrongShape(
                "'\(name)' needs \"heads\" [\(layout.layers)][\(layout.heads)] and \"mlps\" [\(layout.layers)] for this store's model"
            )
        }
        func number(_ v: JSONValue, _ field: String) throws -> Double {
            guard let d = v.doubleValue, d.isFinite else { throw bad("'\(name)': non-number in \(field)") }
            return d
        }
        var units: [Double] = []
        for row in heads {
            guard let r = row.arrayValue, r.count == layout.heads else {
                throw wrongShape("'\(name)': each heads row needs \(layout.heads) values")
            }
            units += try r.map { try number($0, "heads") }
        }
        units += try mlps.map { try number($0, "mlps") }
        guard units.allSatisfy({ $0 >= 0 && $0 <= 1 }) else { throw bad("'\(name)': mask values must lie in [0, 1]") }
        let mask: [UInt8] = try units.map {
            if let threshold { return $0 > Double(threshold) ? 1 : 0 }
            guard $0 == 0 || $0 == 1 else {
                throw bad("'\(name)': fractional mask value \($0); give a threshold to make it binary")
            }
            return UInt8($0)
        }
        var logAlpha: [Float]? = nil
        if let la = obj.get("log_alpha") {
            let flat = (la.arrayValue ?? []).flatMap { $0.arrayValue ?? [$0] }
            guard flat.count == layout.unitCount else {
                throw wrongShape("'\(name)': log_alpha needs \(layout.unitCount) values")
            }
            logAlpha = try flat.map { Float(try number($0, "log_alpha")) }
        }
        var meta = obj.get("meta") ?? .object([])
        guard meta.objectValue != nil else { throw bad("'\(name)': \"meta\" must be an object") }
        self.init(name: name, mask: mask, logAlpha: logAlpha, meta: meta)
        if meta.get("sparsity") == nil { meta = meta.merging([("sparsity", .float(sparsity))]) }
        if meta.get("created") == nil { meta = meta.merging([("created", .string(created()))]) }
        self.meta = meta
    }

    /// A mask file ({"heads", "mlps"}) stored as `name`, with `meta` (the text
    /// of a JSON object) as its metadata.
    public init(maskFile path: String, name: String, meta: String?, layout: StoreLayout, threshold: Float?) throws {
        var obj = try JSONValue.parse(String(decoding: try readDataFile(path), as: UTF8.self), path: path).merging([
            ("name", .string(name))
        ])
        if let meta { obj = obj.merging([("meta", try JSONValue.parse(meta, path: "the metadata"))]) }
        try self.init(json: obj, layout: layout, threshold: threshold, source: path)
    }

    /// The whole subnetwork: name, masks as [L][H] and [L], log-alphas, metadata.
    public func json(layout: StoreLayout) -> JSONValue {
        let heads = (0..<layout.layers).map { l in
            JSONValue.array(mask[l * layout.heads..<(l + 1) * layout.heads].map { .int(Int($0)) })
        }
        var fields: [(String, JSONValue)] = [
            ("name", .string(name)), ("heads", .array(heads)),
            ("mlps", .array(mask.suffix(layout.layers).map { .int(Int($0)) })),
        ]
        if let logAlpha { fields.append(("log_alpha", .floats(logAlpha))) }
        fields.append(("meta", meta))
        return .object(fields)
    }

    /// One line of `store ls --json`: counts instead of masks.
    public var summaryJSON: JSONValue {
        .object([
            ("name", .string(name)), ("kept_units", .int(mask.reduce(0) { $0 + Int($1) })),
            ("sparsity", .float(sparsity)), ("meta", meta),
        ])
    }
}

extension SubnetworkStore {
    /// Parses a JSON-lines file of subnetworks (blank lines skipped); errors name the file and line.
    public static func subnetworks(jsonl path: String, layout: StoreLayout, threshold: Float?) throws
        -> [StoredSubnetwork]
    {
        try subnetworks(jsonlBytes: try readDataFile(path), path: path, layout: layout, threshold: threshold)
    }

    /// A JSON-lines file's (decompressed) bytes, read as if from `path` (named, with the line, in errors).
    public static func subnetworks(jsonlBytes bytes: [UInt8], path: String, layout: StoreLayout, threshold: Float?)
        throws -> [StoredSubnetwork]
    {
        let text = String(decoding: bytes, as: UTF8.self)
        var subs: [StoredSubnetwork] = []
        var stamp: String? = nil  // one "created" for the file, made when a subnetwork first needs it
        func fileStamp() -> String {
            if stamp == nil { stamp = ISO8601DateFormatter().string(from: Date()) }
            return stamp!
        }
        for (i, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated()
        where !line.trimmingCharacters(in: .whitespaces).isEmpty {
            let where_ = "\(path):\(i + 1)"
            subs.append(
                try StoredSubnetwork(
                    json: JSONValue.parse(String(line), path: where_), layout: layout, threshold: threshold,
                    source: where_, created: fileStamp()))
        }
        return subs
    }
}

/// masks.npy (uint8 [N, U]), log_alpha.npy (float32 [N, U], when every subnetwork has log-alphas),
/// names.json and meta.json in `folder`, for Python.
public func writeNpy(_ subs: [StoredSubnetwork], layout: StoreLayout, folder: String) throws {
    try makeFolder(folder)
    let U = layout.unitCount
    try writeAtomically(
        npyFile(descr: "|u1", shape: [subs.count, U], data: subs.flatMap(\.mask)), to: folder + "/masks.npy")
    if !subs.isEmpty, subs.allSatisfy({ $0.logAlpha != nil }) {
        let bytes = subs.flatMap { $0.logAlpha! }.withUnsafeBytes { Array($0) }
        try writeAtomically(npyFile(descr: "<f4", shape: [subs.count, U], data: bytes), to: folder + "/log_alpha.npy")
    }
    try writeAtomically(Array(JSONValue.array(subs.map { .string($0.name) }).pretty.utf8), to: folder + "/names.json")
    try writeAtomically(Array(JSONValue.array(subs.map(\.meta)).pretty.utf8), to: folder + "/meta.json")
}

extension SubnetworkStore {
    /// `store ls`: a header, then name, kept heads, kept MLPs, sparsity and the start of the metadata per subnetwork.
    public func table(_ subs: [StoredSubnetwork]) -> [String] {
        ["name".padding(toLength: 28, withPad: " ", startingAt: 0) + " heads  mlps  sparsity  meta"]
            + subs.map { sub in
                let heads = sub.mask.prefix(layout.layers * layout.heads).reduce(0) { $0 + Int($1) }
                let mlps = sub.mask.suffix(layout.layers).reduce(0) { $0 + Int($1) }
                return sub.name.padding(toLength: 28, withPad: " ", startingAt: 0)
                    + String(format: " %5d  %4d  %8.3f  ", heads, mlps, sub.sparsity)
                    + String(sub.meta.compact.prefix(100))
            }
    }

    /// Appends the subnetworks and activation sets of stores written by parallel jobs (same model) in one
    /// append; a name that would appear twice is refused before anything is written. Returns what was added.
    @discardableResult
    public func merge(_ sources: [SubnetworkStore]) throws -> [StoredSubnetwork] {
        var seen = Set(subnetworks.map(\.name))
        var subs: [StoredSubnetwork] = []
        for s in sources {
            guard s.fingerprint == fingerprint, s.layout == layout else {
                throw CheckpointError.mismatch(
                    path: s.path, reason: "belongs to model \(s.fingerprint), \(path) to \(fingerprint)")
            }
            for sub in s.subnetworks {
                guard seen.insert(sub.name).inserted else {
                    throw CheckpointError.malformed(
                        path: s.path, offset: nil,
                        reason:
                            "subnetwork '\(sub.name)' already exists in \(path) or an earlier input; rename it before merging"
                    )
                }
                subs.append(sub)
            }
        }
        for s in sources {
            for a in s.activationSets where !activationSets.contains(where: { $0.name == a.name }) {
                try addActivations(name: a.name, safetensors: try s.activationSet(a.name))
            }
        }
        try add(subs)
        return subs
    }
}
