// `hcore store …`: the subnetwork store from the command line (format: docs/store-format.md).
import ArgumentParser
import Checkpoint
import Eval
import Failures
import Foundation
import Model
import Store
import Train

struct StoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "store",
        abstract: "Hundreds of subnetworks of one model, their metadata and mean activations, in one small file.",
        discussion: """
            A store is bound to one model (its fingerprint) and only grows by appending; a crash or a full disk during an append leaves everything committed before readable.
              hcore store create subs.hcs --model DIR
              hcore store add subs.hcs --jsonl subnetworks.jsonl
                  # one {"name", "heads", "mlps", "log_alpha"?, "meta"?} per line
              hcore store ls subs.hcs --where target_sparsity=0.5
              hcore store export subs.hcs --json > subs.json
            """,
        subcommands: [
            Create.self, Add.self, List.self, Show.self, Export.self, Remove.self, Compact.self, Verify.self,
            Merge.self, ImportHeuristicCore.self, AddActivations.self,
        ])

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create an empty store bound to a model.")
        @Argument(help: "The store file to create (e.g. subs.hcs).") var store: String
        @OptionGroup var modelOptions: ModelOptions
        func run() throws {
            let model = try BertModel.load(folder: modelOptions.model)
            let s = try SubnetworkStore.create(path: store, fingerprint: model.fingerprint, layout: StoreLayout(model))
            warn(
                "created \(store) for model \(s.fingerprint) (\(s.layout.layers) layers × \(s.layout.heads) heads + \(s.layout.layers) MLPs)"
            )
        }
    }

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add subnetworks: one mask file, or many from --jsonl, in one append.",
            discussion:
                "Masks must be binary, or are made binary with --threshold. Each JSONL line: {\"name\", \"heads\": [[…]], \"mlps\": […], \"log_alpha\": [U values, optional], \"meta\": {…}}."
        )
        @Argument(help: "The store file.") var store: String
        @Option(help: ArgumentHelp("A mask file {\"heads\", \"mlps\"}.", valueName: "file")) var mask: String?
        @Option(help: "Name of the subnetwork added with --mask.") var name: String?
        @Option(help: ArgumentHelp("Metadata for --mask, a JSON object.", valueName: "json")) var meta: String?
        @Option(help: ArgumentHelp("Many subnetworks, one JSON object per line.", valueName: "file")) var jsonl: String?
        @Option(help: "Binarize fractional masks: values > threshold are kept.") var threshold: Float?
        func run() throws {
            let s = try SubnetworkStore.open(path: store, warn: warn)
            let subs: [StoredSubnetwork]
            switch (mask, jsonl, name) {
            case (nil, let jsonl?, _):
                subs = try SubnetworkStore.subnetworks(jsonl: jsonl, layout: s.layout, threshold: threshold)
            case (let mask?, nil, let name?):
                subs = [
                    try StoredSubnetwork(maskFile: mask, name: name, meta: meta, layout: s.layout, threshold: threshold)
                ]
            default: throw UsageError("give --mask FILE --name NAME, or --jsonl FILE")
            }
            try s.add(subs)
            warn("added \(subs.count) subnetwork(s); \(store) now holds \(s.subnetworks.count)")
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "ls", abstract: "List subnetworks (table, or --json), with filters.")
        @Argument(help: "The store file.") var store: String
        @OptionGroup var filter: StoreFilter
        @Flag(help: "Print JSON.") var json = false
        func run() throws {
            let s = try SubnetworkStore.open(path: store, warn: warn)
            let subs = try filter.filter().apply(s)
            if json {
                emit(JSONValue.array(subs.map(\.summaryJSON)).pretty)
                return
            }
            s.table(subs).forEach(emit)
            warn("\(subs.count) of \(s.subnetworks.count) subnetworks · model \(s.fingerprint) · \(s.fileSize) bytes")
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "One subnetwork as JSON: masks, log-alphas, metadata.")
        @Argument(help: "The store file.") var store: String
        @Argument(help: "The subnetwork's name.") var name: String
        func run() throws {
            let s = try SubnetworkStore.open(path: store, warn: warn)
            let sub = try SubnetworkFilter(names: [name]).apply(s)[0]
            emit(sub.json(layout: s.layout).pretty)
        }
    }

    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Export subnetworks as a JSON list, as .npy files for Python, or one as a smaller Hugging Face model.",
            discussion:
                "--npy DIR writes masks.npy (uint8 [N, U]), log_alpha.npy (float32 [N, U], if every subnetwork has them), names.json and meta.json. Unit order: heads layer-major, then one MLP per layer. --hf-folder DIR --model DIR --name NAME (or --mask FILE without a store) writes the subnetwork as a Hugging Face BERT folder: its pruned heads physically removed (config pruned_heads, their Q/K/V rows and W_O columns dropped) with mean ablation folded exactly into W_O's bias (the store's activation set, --activations, or --zero-ablation); a pruned MLP cannot be removed in BERT's config, so its weights become zero and its mean output its output bias — exact, but not smaller. transformers 4.x loads it (transformers 5 dropped head pruning); hcore loads it like any model."
        )
        @Argument(help: "The store file.") var store: String?
        @OptionGroup var filter: StoreFilter
        @Flag(help: "Print a JSON list of {name, heads, mlps, log_alpha, meta} (the default).") var json = false
        @Option(help: ArgumentHelp("Write .npy files into this folder.", valueName: "dir")) var npy: String?
        @Option(
            name: .customLong("hf-folder"),
            help: ArgumentHelp(
                "Write one subnetwork (--name, or --mask) as a Hugging Face model folder.", valueName: "dir"))
        var hfFolder: String?
        @Option(help: ArgumentHelp("With --hf-folder: the model folder the subnetwork belongs to.", valueName: "dir"))
        var model: String?
        @Option(help: "With --hf-folder: the subnetwork's name in the store.") var name: String?
        @OptionGroup var maskOptions: MaskOptions
        @Option(
            help: ArgumentHelp(
                "With --hf-folder: the store's mean-activation set (default: its only one).", valueName: "name"))
        var activationSet: String?
        @Flag(
            help:
                "With --hf-folder: keep every head in place (pruned ones with zero weights, no pruned_heads) — the same function, not smaller, for transformers 5, which dropped head pruning."
        ) var keepShapes = false
        @Flag(
            help:
                "With --hf-folder: write into a folder that already holds files, replacing the model files in it (without it, such a folder is refused: a tokenizer or weights left from another model would be read with the export)."
        ) var force = false
        func run() throws {
            if let hfFolder { return emit(try withReplaceFlag("--force") { try exportFolder(hfFolder) }.description) }
            guard let store else { throw UsageError("give the store file") }
            let s = try SubnetworkStore.open(path: store, warn: warn)
            let subs = try filter.filter().apply(s)
            guard let npy else { return emit(JSONValue.array(subs.map { $0.json(layout: s.layout) }).pretty) }
            try writeNpy(subs, layout: s.layout, folder: npy)
            warn("wrote \(subs.count) subnetworks to \(npy)/masks.npy, names.json, meta.json")
        }

        /// --hf-folder: the subnetwork `--name` of the store (or a --mask file) of the model `--model`.
        func exportFolder(_ folder: String) throws -> ExportSummary {
            guard let model else {
                throw UsageError("--hf-folder needs --model DIR: the model the subnetwork belongs to")
            }
            let loaded = try BertModel.load(folder: model)
            let chosen = try singleModel(
                store: store, name: name, nameFlag: "--name", mask: maskOptions, activationSet: activationSet,
                model: loaded)
            guard let masks = chosen.masks else {
                throw UsageError("name the subnetwork to export: --name NAME (with a store) or --mask FILE")
            }
            return try exportSubnetwork(
                model: loaded, masks: masks, ablation: chosen.ablation, to: folder, keepShapes: keepShapes,
                replacing: force)
        }
    }
}

extension StoreCommand {
    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rm", abstract: "Remove subnetworks by name (an append; `compact` reclaims space).")
        @Argument(help: "The store file.") var store: String
        @Argument(help: "Names to remove.") var names: [String]
        func run() throws {
            let s = try SubnetworkStore.open(path: store, warn: warn)
            try s.remove(names)
            warn("removed \(names.count); \(s.subnetworks.count) left")
        }
    }

    struct Compact: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Rewrite the store with only its live contents (atomically: temp file + rename).")
        @Argument(help: "The store file.") var store: String
        func run() throws {
            let s = try SubnetworkStore.open(path: store, warn: warn)
            let before = s.fileSize
            try s.compact()
            warn("compacted \(store): \(before) → \(s.fileSize) bytes")
        }
    }

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Read and check every block the store uses; optionally that it belongs to a model.")
        @Argument(help: "The store file.") var store: String
        @Option(
            help: ArgumentHelp("Also check the store's model fingerprint against this model folder.", valueName: "dir"))
        var model: String?
        func run() throws {
            let s = try SubnetworkStore.open(
                path: store, model: try model.map { try BertModel.load(folder: $0) }, warn: warn)
            for a in s.activationSets { _ = try s.activationSet(a.name) }
            emit(
                "ok: \(s.subnetworks.count) subnetworks, \(s.activationSets.count) activation sets, model \(s.fingerprint), \(s.fileSize) bytes, \(s.maskPayloadBytes) bytes of mask data"
            )
            if let note = s.recoveryNote { emit("recovered: \(note)") }
        }
    }

    struct Merge: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Merge stores written by parallel jobs into one (created if missing).")
        @Argument(help: "The output store.") var output: String
        @Argument(help: "Input stores (same model).") var inputs: [String]
        func run() throws {
            guard !inputs.isEmpty else { throw UsageError("give at least one input store") }
            let sources = try inputs.map { try SubnetworkStore.open(path: $0, warn: warn) }
            let out =
                FileManager.default.fileExists(atPath: output)
                ? try SubnetworkStore.open(path: output, warn: warn)
                : try SubnetworkStore.create(
                    path: output, fingerprint: sources[0].fingerprint, layout: sources[0].layout)
            let subs = try out.merge(sources)
            warn("merged \(subs.count) subnetworks into \(output) (\(out.subnetworks.count) in all)")
        }
    }

    struct ImportHeuristicCore: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "import-heuristic-core",
            abstract: "Import pruned checkpoints of the Heuristic-Core PyTorch code (log-alphas → masks).",
            discussion:
                "Reads bert.encoder.layer.N.attention.self.log_alpha_heads [H] and bert.encoder.layer.N.output.log_alpha_mlp [1] from each folder's pytorch_model.bin (or model.safetensors), and applies the reference's deterministic rule per module: the expected number of zero gates (stretched hard-concrete CDF at 0, limits (−0.1, 1.1), temperature 2/3), rounded; soft scores sigmoid(log_alpha / temperature × 0.8); that many smallest set to 0; binary at --threshold. The log-alphas are stored too, so soft masks stay available. The metadata takes task, seed, ablation and target_sparsity from the reference's run-folder names (models/pruned/mnli-seed42mean-50, and step from a checkpoint-STEP folder), and --meta KEY=VALUE adds or overrides keys."
        )
        @Argument(help: "The store file.") var store: String
        @Argument(help: "Checkpoint folders of pruned runs.") var folders: [String]
        @Option(help: "Kept if the deterministic soft value exceeds this (the reference's --threshold).") var threshold:
            Float = 0.5
        @Option(
            help: ArgumentHelp(
                "Metadata for every imported subnetwork (repeatable); numbers stay numbers.", valueName: "key=value"))
        var meta: [String] = []
        func run() throws {
            let s = try SubnetworkStore.open(path: store, warn: warn)
            let subs = try folders.map {
                try importHeuristicCoreCheckpoint(folder: $0, layout: s.layout, threshold: threshold, meta: meta)
            }
            try s.add(subs)
            warn("imported \(subs.count) subnetwork(s) into \(store)")
        }
    }

    struct AddActivations: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "add-activations", abstract: "Store a named mean-activation set (from `hcore activations`).")
        @Argument(help: "The store file.") var store: String
        @Option(help: "Name of the set, e.g. the dataset it was computed on.") var name: String
        @Option(help: ArgumentHelp("safetensors file from `hcore activations`.", valueName: "file")) var file: String
        func run() throws {
            try SubnetworkStore.open(path: store, warn: warn).addActivations(name: name, file: file)
            warn("stored activation set '\(name)' in \(store)")
        }
    }
}
