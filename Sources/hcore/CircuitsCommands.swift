// `hcore circuits …`: the heuristic core of a store, and how later heads compose with it.
import ArgumentParser
import Checkpoint
import Circuits
import Eval
import Failures
import Foundation
import Model
import Store

struct CircuitsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "circuits",
        abstract: "Find the heuristic core of a store and measure which heads compose with it.",
        discussion: """
              hcore circuits core --store subs.hcs --where 'eval/mnli-matched>=0.80' \\
                  --metric eval/hans --svg core.svg
              hcore circuits compose --model DIR --store subs.hcs --svg compose.svg \\
                  --dot core.dot
            """,
        subcommands: [Core.self, Compose.self, Patch.self, Ablate.self, Attention.self])

    struct Core: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "The heuristic core of the subnetworks that match the full model in-domain, with permutation nulls, split-half reproducibility and a fraction sweep.",
            discussion: """
                A subnetwork matches when its in-domain accuracy exceeds the full model's minus --margin (3 points: the reference's effective-size rule, one-sided); the values come from --eval (a document of `hcore eval --store S --include-full`) or from the store's metadata (--write-back) with --id-reference; fewer than --min-subnetworks matching is refused. Printed: every unit's keep frequency over the matching subnetworks, the core (units kept by ≥ --fraction of them), the p-value of the core's heads under a layer-stratified permutation null and of its MLPs under their own, the split-half reproducibility of the head core, a fraction sweep, and each unit's presence against the OOD measure (--metric; default the paper's four plotted HANS subcases, eval/<hans>/plotted) with sparsity partialled out. patch, compose, the report and the demo choose their core by this very function (definitions: Sources/Circuits/CoreEvidence.swift).

                  hcore circuits core --store subs.hcs --eval eval.json
                  hcore circuits core --store subs.hcs --id-metric eval/dev --id-reference 0.912
                """
        )
        @OptionGroup var coreOptions: CoreOptions
        @OptionGroup var filter: StoreFilter
        @Option(
            help: ArgumentHelp(
                "Test each unit's presence against this metadata key (default: eval/<hans>/plotted).", valueName: "key")
        )
        var metric: String?
        @Flag(help: "Print JSON (default: a table).") var json = false
        @Flag(help: "Print CSV.") var csv = false
        @Option(help: ArgumentHelp("Write an SVG heatmap of keep frequencies.", valueName: "file")) var svg: String?
        func run() throws {
            let e = try coreOptions.evidence(filter: try filter.filter(), oodMetric: metric)
            if let svg { try writeAtomically(Array(e.report.svg.utf8), to: svg) }
            if json {
                emit(e.json.pretty)
            } else if csv {
                emit(bytes: Array(e.report.csv.utf8))
            } else {
                e.table.forEach(emit)
            }
        }
    }

    struct Compose: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Weight-based Q/K/V composition between heads (Elhage et al. 2021), each score placed in an anti-causal null.",
            discussion:
                "Scores are ‖W_OV^A W_QK^B‖_F / (‖W_OV^A‖_F ‖W_QK^B‖_F) and likewise (see Sources/Circuits/Composition.swift); biases are ignored. Each score gets its percentile among the anti-causal scores of the same two layers (a later head 'writing' into an earlier one, which cannot happen: what the formula gives without composition). With --store, the core (chosen as by `circuits core`) is highlighted; each outside head's strongest composition with it is compared with the maximum of as many null draws, and core → core edges are listed apart."
        )
        @OptionGroup var modelOptions: ModelOptions
        @Flag(
            help:
                "Fold the gain of the LayerNorm right before the reading head's layer into its weights — an approximation: post-LN BERT passes 2(j − i) LayerNorms from layer i to layer j, each centring and scaling, and only this last gain is folded."
        ) var foldLayernorm = false
        @OptionGroup var coreOptions: CoreOptions
        @Flag(help: "Print JSON (the default).") var json = false
        @Flag(help: "Print CSV instead.") var csv = false
        @Option(
            help: ArgumentHelp(
                "SVG heatmap: each head's strongest composition with the core (or any earlier head).", valueName: "file"
            )) var svg: String?
        @Option(help: ArgumentHelp("DOT graph of the strongest core → head edges.", valueName: "file")) var dot: String?
        @Option(help: "Edges in the DOT graph.") var top: Int = 20
        func run() throws {
            let model = try BertModel.load(folder: modelOptions.model)
            let report = CompositionReport(model: model, foldLayerNorm: foldLayernorm)
            let core = Set(
                try coreOptions.store == nil
                    ? []
                    : coreOptions.evidence(model: model).report.coreHeads.map {
                        PrunableUnit.head($0.layer, $0.head).description
                    })
            if let svg {
                try writeAtomically(
                    Array(report.svg(core: core, layers: model.layerCount, heads: model.headCount).utf8), to: svg)
            }
            if let dot { try writeAtomically(Array(report.dot(core: core, top: top).utf8), to: dot) }
            if csv {
                emit(bytes: Array(report.csv.utf8))
            } else {
                emit(report.json(core: core, null: CompositionNull(model: model, foldLayerNorm: foldLayernorm)).pretty)
            }
        }
    }
}

/// How every circuits command chooses its core (Circuits/CoreEvidence.swift, Circuits/Matching.swift).
struct CoreOptions: ParsableArguments {
    @Option(help: ArgumentHelp("The store whose subnetworks give the core.", valueName: "store")) var store: String?
    @Option(help: "The core: units kept by at least this fraction of the matching subnetworks.") var fraction: Double =
        1.0
    @Option(
        name: .customLong("id-metric"),
        help: ArgumentHelp(
            "The in-domain measure subnetworks match on: a metadata key eval/DATASET (`hcore eval --write-back`), or a dataset of --eval (default: the only in-domain one).",
            valueName: "key")) var idMetric: String?
    @Option(
        name: .customLong("id-reference"),
        help: "The full model's value of --id-metric (default: its row in --eval).") var idReference: Double?
    @Option(
        name: .customLong("eval"),
        help: ArgumentHelp(
            "An eval document with the full model's row (`hcore eval --store S --include-full`): the in-domain values to match on.",
            valueName: "file")) var evalDocument: String?
    @Option(
        help:
            "A subnetwork matches when its in-domain accuracy exceeds the full model's minus this (0.03: the reference's 3 points)."
    ) var margin: Double = MatchRule.referenceMargin
    @Option(name: .customLong("min-subnetworks"), help: "Refuse a core of fewer matching subnetworks.")
    var minSubnetworks: Int = 3
    @Flag(help: "Take every subnetwork of the store, with no in-domain rule (said in the output).")
    var allSubnetworks = false
    @Option(help: "Permutations of the nulls of the core's size.") var permutations: Int = 1000
    @Option(help: "Random splits of the seeds into halves for the split-half reproducibility.") var splits: Int = 200
    @Option(name: .customLong("null-seed"), help: "Seed of the permutations and splits.") var nullSeed: UInt64 = 0

    func evidence(model: BertModel? = nil, filter: SubnetworkFilter? = nil, oodMetric: String? = nil) throws
        -> CoreEvidence
    {
        guard let store else { throw UsageError("give --store STORE") }
        if allSubnetworks {
            try refuse(
                [
                    ("--id-metric", idMetric != nil), ("--id-reference", idReference != nil),
                    ("--eval", evalDocument != nil),
                ],
                because: "--all-subnetworks takes every subnetwork, with no in-domain rule")
        }
        var r = CoreRequest(store: store)
        (r.idMetric, r.fullModel, r.evalDocument, r.margin, r.minimumCount, r.allSubnetworks) = (
            idMetric, idReference, evalDocument, margin, minSubnetworks, allSubnetworks
        )
        (r.settings.fraction, r.settings.permutations, r.settings.splits, r.settings.seed, r.settings.oodMetric) = (
            fraction, permutations, splits, nullSeed, oodMetric
        )
        return try phrasingSettings { try r.evidence(model: model, filter: filter, warn: warn) }
    }
}

extension CircuitsCommand {
    struct Patch: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "patch",
            abstract:
                "Path patching: which later heads carry the core's effect on the prediction, against matched random senders.",
            discussion: """
                Senders (the core: --store, or --core "0.3 1.7") are corrupted while every other head stays at its clean context; each later head's query, key or value input then receives what the senders wrote (and nothing else changes), and the change of the entailment log-odds is measured — overall and on the paper's four plotted HANS subcases — beside the same for --controls random sender sets of the same size and layers (percentile of |Δ|). Corruption: the senders' mean activation (--corrupt mean, with --activations), or their output on a paired input (--corrupt paired): a pair of the other label, the same heuristic and the same token count, drawn from --corrupt-data (default: the whole --data file). LayerNorms recompute their scales unless --freeze-layernorm keeps the clean run's. Definitions: Sources/Circuits/PathPatching.swift and docs/circuits.md. `circuits reads` is this command.

                  hcore circuits patch --model DIR --store subs.hcs --id-metric eval/dev \\
                      --data hans.txt.zst --activations acts.safetensors
                """,
            aliases: ["reads"])
        @OptionGroup var modelOptions: ModelOptions
        @Option(help: ArgumentHelp("Pairs to patch on (HANS groups the result by subcase).", valueName: "file"))
        var data: String
        @Option(help: "Use only the first N pairs.") var maxExamples: Int = 200
        @Option(
            help: ArgumentHelp(
                "Mean activations (`hcore activations`): the senders' corrupted value with --corrupt mean.",
                valueName: "file")) var activations: String?
        @Option(
            help: ArgumentHelp(
                "mean (the senders' mean activation) or paired (their output on a paired input of the other label).",
                valueName: "kind")) var corrupt = "mean"
        @Option(
            help: ArgumentHelp(
                "The pairs --corrupt paired draws partners from (default: all of --data).", valueName: "file"))
        var corruptData: String?
        @Flag(
            help:
                "Keep every LayerNorm's scale at its clean value (only centring recomputes), making the paths add up linearly through LayerNorm."
        ) var freezeLayernorm = false
        @OptionGroup var coreOptions: CoreOptions
        @Option(
            help: ArgumentHelp(
                "Sender heads as layer.head instead of a store's core, space- or comma-separated.", valueName: "heads"))
        var core: String?
        @Option(help: "Matched random sender sets.") var controls: Int = 10
        @Option(help: "Seed of the random sender sets and of the pairing.") var seed: UInt64 = 0
        @Flag(help: "Let the other heads recompute (the senders' total effect) instead of freezing them.")
        var noFreeze = false
        @Flag(help: "Print JSON (default: a table of the strongest receivers).") var json = false
        @OptionGroup var tokenization: TokenizationOptions
        func run() throws {
            let (model, tok) = try modelOptions.load()
            let senders =
                try core.map { try parseCoreHeads($0, layers: model.layerCount, heads: model.headCount) }
                ?? coreOptions.evidence(model: model).report.coreHeads
            let (ds, options) = (
                try Dataset.loadNonEmpty(data, limit: maxExamples),
                try tokenization.options(positions: model.config.maxPositionEmbeddings)
            )
            let source = try PatchCorruptionSource.named(
                corrupt,
                activations: { try activations.map { try MeanActivations.load(path: $0, model: model, warn: warn) } },
                pool: corruptData ?? data, tokenizer: tok, options: options, seed: seed)
            let r = try patchReport(
                model: model, examples: ds.examples,
                encodings: try encodeAll(ds.examples, tokenizer: tok, options: options), senders: senders,
                corruption: source, controls: controls, seed: seed, freeze: !noFreeze, frozenLayerNorm: freezeLayernorm,
                progress: warn)
            if json { emit(r.json.pretty) } else { r.table().forEach(emit) }
        }
    }
}

extension CircuitsCommand {
    struct Ablate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Remove each head and each MLP in turn; every unit's change in loss and accuracy per dataset.",
            discussion:
                "Michel et al.'s ablation study (the reference's --try-removing-edges), on the full model or a subnetwork (--mask, or --store with --subnetwork), with mean ablation (--activations or the store's set) or --zero-ablation. Loss is the mean −log p(gold) over the dataset's scoring classes (HANS sums neutral and contradiction). Each variant is one compiled plan of one evaluation pass, so it runs at eval speed. Prints JSON; --svg writes a heatmap of Δloss per dataset (FILE, or FILE-KEY.svg for several)."
        )
        @OptionGroup var modelOptions: ModelOptions
        @Option(help: ArgumentHelp("Dataset (repeat for several).", valueName: "file")) var data: [String] = []
        @OptionGroup var maskOptions: MaskOptions
        @Option(help: ArgumentHelp("A store holding the subnetwork to take apart.", valueName: "store")) var store:
            String?
        @Option(help: ArgumentHelp("The subnetwork's name in --store.", valueName: "name")) var subnetwork: String?
        @Option(help: ArgumentHelp("Mean-activation set of --store (default: its only one).", valueName: "name"))
        var activationSet: String?
        @Option(help: "Use only the first N examples of each set.") var maxExamples: Int?
        @Option(help: ArgumentHelp("Heatmap of Δloss (accuracy drop without labels).", valueName: "file")) var svg:
            String?
        @OptionGroup var tokenization: TokenizationOptions
        func run() throws {
            guard !data.isEmpty else { throw UsageError("give at least one --data FILE") }
            let (model, tok) = try modelOptions.load()
            let base = try singleModel(
                store: store, name: subnetwork, nameFlag: "--subnetwork", mask: maskOptions,
                activationSet: activationSet, model: model)
            let prepared = try prepareDatasets(
                data, keys: .init(), skipBadRows: false, limit: maxExamples.map { .first($0) }, model: model,
                tokenizer: tok,
                options: try tokenization.options(positions: model.config.maxPositionEmbeddings), warn: warn)
            let bar = ProgressBar(
                "ablate \(base.name)",
                total: (model.layerCount * (model.headCount + 1) + 1) * prepared.reduce(0) { $0 + $1.encodings.count })
            let r = try ablateUnits(
                model: model, datasets: prepared, base: base.masks, baseName: base.name, ablation: base.ablation,
                batchSize: 32, progress: bar.update)
            if let svg { try r.writeHeatmaps(svg) }
            emit(r.json.pretty)
        }
    }

    struct Attention: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Every head's attention pattern on pairs: JSON lines, .npy files, or one head as an SVG.",
            discussion:
                "One JSON line per pair: {\"tokens\", \"attentions\": [layer][head][query][key]} (transformers' output_attentions). --npy DIR writes attention-N.npy (float32 [layers, heads, T, T]) and tokens-N.json per pair; --svg FILE draws one head (--head a4.h3) of the first pair with its tokens."
        )
        @OptionGroup var modelOptions: ModelOptions
        @OptionGroup var inputs: TextInputOptions
        @OptionGroup var tokenization: TokenizationOptions
        @Option(help: ArgumentHelp("Write .npy files into this folder instead of JSON lines.", valueName: "dir"))
        var npy: String?
        @Option(help: ArgumentHelp("Draw one head of the first pair.", valueName: "file")) var svg: String?
        @Option(help: ArgumentHelp("The head --svg draws.", valueName: "unit")) var head: String = "a0.h0"
        func run() throws {
            let (model, tok) = try modelOptions.load()
            let encodings = try encodeAll(
                try inputs.examples(), tokenizer: tok,
                options: try tokenization.options(positions: model.config.maxPositionEmbeddings))
            try dumpAttention(
                model: model, tokenizer: tok, encodings: encodings, npy: npy, svg: svg, head: head, emit: emit)
        }
    }
}
