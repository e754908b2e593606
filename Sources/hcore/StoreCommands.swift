// `hcore store …`: the subnetwork store from the command line (format: docs/store-format.md).
import ArgumentParser
import Checkpoint
import Failures
import Foundation
import Model

struct StoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "store",
        abstract: "Hundreds of subnetworks of one model, their metadata and mean activations, in one small file.",
        discussion: """
        A store is bound to one model (its fingerprint) and only grows by appending; a crash or a full disk \
        during an append leaves everything committed before readable.
          hcore store create subs.hcs --model DIR
          hcore store add subs.hcs --jsonl subnetworks.jsonl      # {"name", "heads", "mlps", "log_alpha"?, "meta"?} per line
          hcore store ls subs.hcs --where target_sparsity=0.5
          hcore store export subs.hcs --json > subs.json
        """,
        subcommands: [Create.self, Add.self, List.self, Show.self, Export.self, Remove.self, Compact.self, Verify.self,
                      Merge.self, ImportHeuristicCore.self, AddActivations.self])

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create an empty store bound to a model.")
        @Argument(help: "The store file to create (e.g. subs.hcs).") var store: String
        @OptionGroup var modelOptions: ModelOptions
        func run() throws {
            let model = try BertModel.load(folder: modelOptions.model)
            let s = try SubnetworkStore.create(path: store, fingerprint: model.fingerprint,
                                               layout: StoreLayout(layers: model.layerCount, heads: model.headCount))
            warn("created \(store) for model \(s.fingerprint) (\(s.layout.layers) layers × \(s.layout.heads) heads + \(s.layout.layers) MLPs)")
        }
    }

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add subnetworks: one mask file, or many from --jsonl, in one append.",
            discussion: "Masks must be binary, or are made binary with --threshold. Each JSONL line: {\"name\", \"heads\": [[…]], \"mlps\": […], \"log_alpha\": [U values, optional], \"meta\": {…}}.")
        @Argument(help: "The store file.") var store: String
        @Option(help: ArgumentHelp("A mask file {\"heads\", \"mlps\"}.", valueName: "file")) var mask: String?
        @Option(help: "Name of the subnetwork added with --mask.") var name: String?
        @Option(help: ArgumentHelp("Metadata for --mask, a JSON object.", valueName: "json")) var meta: String?
        @Option(help: ArgumentHelp("Many subnetworks, one JSON object per line.", valueName: "file")) var jsonl: String?
        @Option(help: "Binarize fractional masks: values > threshold are kept.") var threshold: Float?
        func run() throws {
            let s = try SubnetworkStore.open(path: store)
            if let note = s.recoveryNote { warn("warning: \(store): \(note)") }
            var subs: [StoredSubnetwork] = []
            if let jsonl {
                guard mask == nil else { throw CLIError("give --mask or --jsonl, not both") }
                let text = String(decoding: try readDataFile(jsonl), as: UTF8.self)
                for (i, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() where !line.trimmingCharacters(in: .whitespaces).isEmpty {
                    do { subs.append(try parseSubnetwork(JSONValue.parse(String(line), path: "\(jsonl):\(i + 1)"), layout: s.layout, threshold: threshold, defaultName: nil)) }
                    catch { throw CLIError("\(jsonl):\(i + 1): \(error)", code: .badInput) }
                }
            } else if let mask {
                guard let name else { throw CLIError("--mask needs --name") }
                var obj = try JSONValue.parse(String(decoding: try readDataFile(mask), as: UTF8.self), path: mask)
                obj = obj.merging([("name", .string(name))])
                if let meta { obj = obj.merging([("meta", try JSONValue.parse(meta, path: "--meta"))]) }
                subs.append(try parseSubnetwork(obj, layout: s.layout, threshold: threshold, defaultName: name))
            } else {
                throw CLIError("give --mask FILE --name NAME, or --jsonl FILE")
            }
            try s.add(subs)
            warn("added \(subs.count) subnetwork(s); \(store) now holds \(s.subnetworks.count)")
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "List subnetworks (table, or --json), with filters.")
        @Argument(help: "The store file.") var store: String
        @OptionGroup var filter: StoreFilter
        @Flag(help: "Print JSON.") var json = false
        func run() throws {
            let s = try SubnetworkStore.open(path: store)
            if let note = s.recoveryNote { warn("warning: \(store): \(note)") }
            let subs = try filter.apply(s.subnetworks)
            if json {
                emit(JSONValue.array(subs.map { summary($0, layout: s.layout) }).pretty)
                return
            }
            emit("name".padding(toLength: 28, withPad: " ", startingAt: 0) + " heads  mlps  sparsity  meta")
            for sub in subs {
                let heads = sub.mask.prefix(s.layout.layers * s.layout.heads).reduce(0) { $0 + Int($1) }
                let mlps = sub.mask.suffix(s.layout.layers).reduce(0) { $0 + Int($1) }
                let sparsity = 1 - Double(heads + mlps) / Double(s.layout.unitCount)
                emit(sub.name.padding(toLength: 28, withPad: " ", startingAt: 0)
                     + String(format: " %5d  %4d  %8.3f  ", heads, mlps, sparsity) + String(sub.meta.compact.prefix(100)))
            }
            warn("\(subs.count) of \(s.subnetworks.count) subnetworks · model \(s.fingerprint) · \(s.fileSize) bytes")
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "One subnetwork as JSON: masks, log-alphas, metadata.")
        @Argument(help: "The store file.") var store: String
        @Argument(help: "The subnetwork's name.") var name: String
        func run() throws {
            let s = try SubnetworkStore.open(path: store)
            guard let sub = s.subnetworks.first(where: { $0.name == name }) else {
                throw CLIError("\(store) has no subnetwork '\(name)' (see `hcore store ls`)", code: .badInput)
            }
            emit(full(sub, layout: s.layout).pretty)
        }
    }

    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Export subnetworks as a JSON list, or as .npy files for Python.",
            discussion: "--npy DIR writes masks.npy (uint8 [N, U]), log_alpha.npy (float32 [N, U], if every subnetwork has them), names.json and meta.json. Unit order: heads layer-major, then one MLP per layer.")
        @Argument(help: "The store file.") var store: String
        @OptionGroup var filter: StoreFilter
        @Flag(help: "Print a JSON list of {name, heads, mlps, log_alpha, meta} (the default).") var json = false
        @Option(help: ArgumentHelp("Write .npy files into this folder.", valueName: "dir")) var npy: String?
        func run() throws {
            let s = try SubnetworkStore.open(path: store)
            let subs = try filter.apply(s.subnetworks)
            if let npy {
                try FileManager.default.createDirectory(atPath: npy, withIntermediateDirectories: true)
                let U = s.layout.unitCount
                try writeAtomically(npyFile(descr: "|u1", shape: [subs.count, U], data: subs.flatMap(\.mask)), to: npy + "/masks.npy")
                if !subs.isEmpty, subs.allSatisfy({ $0.logAlpha != nil }) {
                    let bytes = subs.flatMap { $0.logAlpha! }.withUnsafeBytes { Array($0) }
                    try writeAtomically(npyFile(descr: "<f4", shape: [subs.count, U], data: bytes), to: npy + "/log_alpha.npy")
                }
                try writeAtomically(Array(JSONValue.array(subs.map { .string($0.name) }).pretty.utf8), to: npy + "/names.json")
                try writeAtomically(Array(JSONValue.array(subs.map(\.meta)).pretty.utf8), to: npy + "/meta.json")
                warn("wrote \(subs.count) subnetworks to \(npy)/masks.npy, names.json, meta.json")
                return
            }
            emit(JSONValue.array(subs.map { full($0, layout: s.layout) }).pretty)
        }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "rm", abstract: "Remove subnetworks by name (an append; `compact` reclaims space).")
        @Argument(help: "The store file.") var store: String
        @Argument(help: "Names to remove.") var names: [String]
        func run() throws {
            let s = try SubnetworkStore.open(path: store)
            try s.remove(names)
            warn("removed \(names.count); \(s.subnetworks.count) left")
        }
    }

    struct Compact: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Rewrite the store with only its live contents (atomically: temp file + rename).")
        @Argument(help: "The store file.") var store: String
        func run() throws {
            let s = try SubnetworkStore.open(path: store)
            let before = s.fileSize
            try s.compact()
            warn("compacted \(store): \(before) → \(s.fileSize) bytes")
        }
    }

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Read and check every block the store uses; optionally that it belongs to a model.")
        @Argument(help: "The store file.") var store: String
        @Option(help: ArgumentHelp("Also check the store's model fingerprint against this model folder.", valueName: "dir")) var model: String?
        func run() throws {
            let s = try SubnetworkStore.open(path: store)
            for a in s.activationSets { _ = try s.activationSet(a.name) }
            if let model {
                let m = try BertModel.load(folder: model)
                try checkStore(s, model: m)
            }
            emit("ok: \(s.subnetworks.count) subnetworks, \(s.activationSets.count) activation sets, model \(s.fingerprint), \(s.fileSize) bytes, \(s.maskPayloadBytes) bytes of mask data")
            if let note = s.recoveryNote { emit("recovered: \(note)") }
        }
    }

    struct Merge: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Merge stores written by parallel jobs into one (created if missing).")
        @Argument(help: "The output store.") var output: String
        @Argument(help: "Input stores (same model).") var inputs: [String]
        func run() throws {
            guard !inputs.isEmpty else { throw CLIError("give at least one input store") }
            let sources = try inputs.map { try SubnetworkStore.open(path: $0) }
            let first = sources[0]
            let out = FileManager.default.fileExists(atPath: output) ? try SubnetworkStore.open(path: output)
                : try SubnetworkStore.create(path: output, fingerprint: first.fingerprint, layout: first.layout)
            var seen = Set(out.subnetworks.map(\.name))
            var subs: [StoredSubnetwork] = []
            for (path, s) in zip(inputs, sources) {
                guard s.fingerprint == out.fingerprint, s.layout == out.layout else {
                    throw CLIError("\(path) belongs to model \(s.fingerprint), \(output) to \(out.fingerprint)", code: .mismatch)
                }
                for sub in s.subnetworks {
                    guard seen.insert(sub.name).inserted else { throw CLIError("subnetwork '\(sub.name)' of \(path) already exists; rename before merging", code: .badInput) }
                    subs.append(sub)
                }
                for a in s.activationSets where !out.activationSets.contains(where: { $0.name == a.name }) {
                    try out.addActivations(name: a.name, safetensors: try s.activationSet(a.name))
                }
            }
            try out.add(subs)
            warn("merged \(subs.count) subnetworks into \(output) (\(out.subnetworks.count) in all)")
        }
    }

    struct ImportHeuristicCore: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "import-heuristic-core",
            abstract: "Import pruned checkpoints of the Heuristic-Core PyTorch code (log-alphas → masks).",
            discussion: """
            Reads bert.encoder.layer.N.attention.self.log_alpha_heads [H] and bert.encoder.layer.N.output.log_alpha_mlp [1] \
            from each folder's pytorch_model.bin (or model.safetensors), and applies the reference's deterministic rule \
            per module: the expected number of zero gates (stretched hard-concrete CDF at 0, limits (−0.1, 1.1), \
            temperature 2/3), rounded; soft scores sigmoid(log_alpha / temperature × 0.8); that many smallest set to 0; \
            binary at --threshold. The log-alphas are stored too, so soft masks stay available.
            """)
        @Argument(help: "The store file.") var store: String
        @Argument(help: "Checkpoint folders of pruned runs.") var folders: [String]
        @Option(help: "Kept if the deterministic soft value exceeds this (the reference's --threshold).") var threshold: Float = 0.5
        func run() throws {
            let s = try SubnetworkStore.open(path: store)
            var subs: [StoredSubnetwork] = []
            for folder in folders {
                let st = folder + "/model.safetensors", bin = folder + "/pytorch_model.bin"
                let source: TensorSource = FileManager.default.fileExists(atPath: st) ? try SafetensorsFile(path: st) : try TorchCheckpoint(path: bin)
                let L = s.layout.layers, H = s.layout.heads
                var la: [Float] = []
                for l in 0..<L {
                    let n = "bert.encoder.layer.\(l).attention.self.log_alpha_heads"
                    guard let i = source.info(n), i.elementCount == H else { throw CLIError("\(source.path): no \(n) of \(H) values", code: .badInput) }
                    la += try source.floats(n)
                }
                for l in 0..<L {
                    let n = "bert.encoder.layer.\(l).output.log_alpha_mlp"
                    guard let i = source.info(n), i.elementCount == 1 else { throw CLIError("\(source.path): no \(n) of 1 value", code: .badInput) }
                    la += try source.floats(n)
                }
                let m = MaskValues.fromLogAlpha(la, layers: L, heads: H, threshold: threshold)
                let name = (folder as NSString).standardizingPath.split(separator: "/").suffix(2).joined(separator: "/")
                subs.append(StoredSubnetwork(name: name, mask: m.units.map { UInt8($0) }, logAlpha: la, meta: .object([
                    ("source", .string(folder)), ("threshold", .float32(threshold)),
                    ("sparsity", .float(1 - Double(m.keptCount) / Double(s.layout.unitCount))), ("imported", .string(ISO8601DateFormatter().string(from: Date()))),
                ])))
            }
            try s.add(subs)
            warn("imported \(subs.count) subnetwork(s) into \(store)")
        }
    }

    struct AddActivations: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "add-activations", abstract: "Store a named mean-activation set (from `hcore activations`).")
        @Argument(help: "The store file.") var store: String
        @Option(help: "Name of the set, e.g. the dataset it was computed on.") var name: String
        @Option(help: ArgumentHelp("safetensors file from `hcore activations`.", valueName: "file")) var file: String
        func run() throws {
            let s = try SubnetworkStore.open(path: store)
            let st = try SafetensorsFile(path: file)
            if let fp = st.metadata["model_fingerprint"], fp != s.fingerprint {
                throw CLIError("\(file) was computed for model \(fp); \(store) belongs to \(s.fingerprint)", code: .mismatch)
            }
            try s.addActivations(name: name, safetensors: st.file.slice(0..<st.file.count))
            warn("stored activation set '\(name)' in \(store)")
        }
    }
}

/// Filters shared by ls and export.
struct StoreFilter: ParsableArguments {
    @Option(help: "Only subnetworks whose meta.tags contains this tag.") var tag: String?
    @Option(name: .customLong("where"), help: ArgumentHelp("Metadata condition KEY=VALUE, KEY>=NUMBER or KEY<=NUMBER (repeatable).", valueName: "cond"))
    var conditions: [String] = []
    @Option(help: "Only subnetworks with at least this achieved sparsity (fraction of units pruned).") var minSparsity: Double?
    @Option(help: "Only subnetworks with at most this achieved sparsity.") var maxSparsity: Double?

    func apply(_ subs: [StoredSubnetwork]) throws -> [StoredSubnetwork] {
        try subs.filter { sub in
            if let tag, !(sub.meta.get("tags")?.arrayValue ?? []).contains(where: { $0.stringValue == tag }) { return false }
            let sparsity = 1 - Double(sub.mask.reduce(0) { $0 + Int($1) }) / Double(max(1, sub.mask.count))
            if let minSparsity, sparsity < minSparsity - 1e-9 { return false }
            if let maxSparsity, sparsity > maxSparsity + 1e-9 { return false }
            for c in conditions {
                for op in [">=", "<=", "="] {
                    guard let r = c.range(of: op) else { continue }
                    let key = String(c[..<r.lowerBound]), value = String(c[r.upperBound...])
                    let v = sub.meta.get(key)
                    if op == "=" {
                        let s = v?.stringValue ?? v.map { $0.compact } ?? ""
                        if s != value && !(Double(value) != nil && v?.doubleValue == Double(value)) { return false }
                    } else {
                        guard let x = Double(value) else { throw CLIError("--where \(c): \(value) is not a number") }
                        guard let d = v?.doubleValue else { return false }
                        if op == ">=" ? d < x : d > x { return false }
                    }
                    break
                }
            }
            return true
        }
    }
}

func parseSubnetwork(_ obj: JSONValue, layout: StoreLayout, threshold: Float?, defaultName: String?) throws -> StoredSubnetwork {
    guard let name = obj.get("name")?.stringValue ?? defaultName else { throw CLIError("no \"name\"", code: .badInput) }
    guard let heads = obj.get("heads")?.arrayValue, heads.count == layout.layers,
          let mlps = obj.get("mlps")?.arrayValue, mlps.count == layout.layers else {
        throw CLIError("'\(name)': needs \"heads\" [\(layout.layers)][\(layout.heads)] and \"mlps\" [\(layout.layers)]", code: .mismatch)
    }
    var units: [Double] = []
    for row in heads {
        guard let r = row.arrayValue, r.count == layout.heads else { throw CLIError("'\(name)': each heads row needs \(layout.heads) values", code: .mismatch) }
        units += try r.map { guard let d = $0.doubleValue else { throw CLIError("'\(name)': non-number in heads", code: .badInput) }; return d }
    }
    units += try mlps.map { guard let d = $0.doubleValue else { throw CLIError("'\(name)': non-number in mlps", code: .badInput) }; return d }
    guard units.allSatisfy({ $0 >= 0 && $0 <= 1 }) else { throw CLIError("'\(name)': mask values must lie in [0, 1]", code: .mismatch) }
    let mask: [UInt8] = try units.map {
        if let threshold { return $0 > Double(threshold) ? 1 : 0 }
        guard $0 == 0 || $0 == 1 else { throw CLIError("'\(name)': fractional mask value \($0); pass --threshold to binarize", code: .badInput) }
        return UInt8($0)
    }
    var logAlpha: [Float]? = nil
    if let la = obj.get("log_alpha") {
        let flat = (la.arrayValue ?? []).flatMap { $0.arrayValue ?? [$0] }
        guard flat.count == layout.unitCount else { throw CLIError("'\(name)': log_alpha needs \(layout.unitCount) values", code: .mismatch) }
        logAlpha = try flat.map { guard let d = $0.doubleValue else { throw CLIError("'\(name)': non-number in log_alpha", code: .badInput) }; return Float(d) }
    }
    var meta = obj.get("meta") ?? .object([])
    if meta.get("sparsity") == nil {
        meta = meta.merging([("sparsity", .float(1 - Double(mask.reduce(0) { $0 + Int($1) }) / Double(layout.unitCount)))])
    }
    if meta.get("created") == nil { meta = meta.merging([("created", .string(ISO8601DateFormatter().string(from: Date())))]) }
    return StoredSubnetwork(name: name, mask: mask, logAlpha: logAlpha, meta: meta)
}

func summary(_ s: StoredSubnetwork, layout: StoreLayout) -> JSONValue {
    let kept = s.mask.reduce(0) { $0 + Int($1) }
    return .object([("name", .string(s.name)), ("kept_units", .int(kept)), ("sparsity", .float(1 - Double(kept) / Double(layout.unitCount))), ("meta", s.meta)])
}

func full(_ s: StoredSubnetwork, layout: StoreLayout) -> JSONValue {
    let m = MaskValues(units: s.mask.map(Float.init), layers: layout.layers, heads: layout.heads)
    var fields: [(String, JSONValue)] = [("name", .string(s.name)), ("heads", .array(m.heads.map { .array($0.map { .int(Int($0)) }) })),
                                         ("mlps", .array(m.mlps.map { .int(Int($0)) }))]
    if let la = s.logAlpha { fields.append(("log_alpha", .floats(la))) }
    fields.append(("meta", s.meta))
    return .object(fields)
}

/// Refuses a store made for another model.
func checkStore(_ s: SubnetworkStore, model: BertModel) throws {
    guard s.fingerprint == model.fingerprint else {
        throw CLIError("\(s.path) belongs to model \(s.fingerprint), but \(model.folder) is \(model.fingerprint); use the model the subnetworks were pruned from", code: .mismatch)
    }
    guard s.layout == StoreLayout(layers: model.layerCount, heads: model.headCount) else {
        throw CLIError("\(s.path) has a \(s.layout.layers)×\(s.layout.heads) layout; the model has \(model.layerCount)×\(model.headCount)", code: .mismatch)
    }
}

/// A .npy (format 1.0) file.
func npyFile(descr: String, shape: [Int], data: [UInt8]) -> [UInt8] {
    var header = "{'descr': '\(descr)', 'fortran_order': False, 'shape': (\(shape.map(String.init).joined(separator: ", "))\(shape.count == 1 ? "," : "")), }"
    while (10 + header.utf8.count + 1) % 64 != 0 { header += " " }
    header += "\n"
    let n = header.utf8.count
    return [0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(n & 0xFF), UInt8(n >> 8)] + Array(header.utf8) + data
}
