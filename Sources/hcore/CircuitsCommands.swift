// `hcore circuits …`: the heuristic core of a store, and how later heads compose with it.
import ArgumentParser
import Checkpoint
import Circuits
import Eval
import Failures
import Foundation
import Model
import Store
import Study

struct CircuitsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "circuits",
        abstract: "Find the heuristic core of a store and measure which heads read from it.",
        discussion: """
              hcore circuits core --store subs.hcs --eval eval.json --svg core.svg
              hcore circuits readers --model DIR --store subs.hcs --eval eval.json
              hcore circuits compose --model DIR --store subs.hcs --eval eval.json \\
                  --svg compose.svg
            """,
        subcommands: [Core.self, Readers.self, Positions.self, Compose.self, Ablate.self, Attention.self])

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
                "Scores are ‖W_OV^A W_QK^B‖_F / (‖W_OV^A‖_F ‖W_QK^B‖_F) and likewise (see Sources/Circuits/Composition.swift); biases are ignored; --fold-layernorm folds every LayerNorm between the two heads in exactly. Each score gets its percentile among the anti-causal scores of the same two layers (a later head 'writing' into an earlier one, which cannot happen: what the formula gives without composition). With --store, the core (chosen as by `circuits core`) is highlighted; each outside head's strongest composition with it is compared with the same maximum over sender sets drawn outside the core from the core's layers (its own null, with a p-value and Benjamini–Hochberg q), and core → core edges are listed apart."
        )
        @OptionGroup var modelOptions: ModelOptions
        @Flag(
            help:
                "Fold the skip path between the two heads into the writer exactly: every LayerNorm's centring and gain on the way (post-LN BERT passes 2(j − i) of them; their σ cancel in the normalised score)."
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
            let coreHeads = try coreOptions.store == nil ? [] : coreOptions.evidence(model: model).coreHeads
            let core = Set(coreHeads.map { PrunableUnit.head($0.layer, $0.head).description })
            if let svg {
                try writeAtomically(
                    Array(report.svg(core: core, layers: model.layerCount, heads: model.headCount).utf8), to: svg)
            }
            if let dot { try writeAtomically(Array(report.dot(core: core, top: top).utf8), to: dot) }
            if csv {
                emit(bytes: Array(report.csv.utf8))
            } else {
                emit(
                    report.json(
                        core: coreHeads, layers: model.layerCount, heads: model.headCount,
                        null: CompositionNull(model: model, foldLayerNorm: foldLayernorm)
                    ).pretty)
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
    struct Ablate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Remove each head and each MLP in turn; every unit's change in loss and accuracy per dataset.",
            discussion:
                "Michel et al.'s ablation study (the reference's --try-removing-edges), on the full model or a subnetwork (--mask, or --store with --subnetwork), with mean ablation (--activations or the store's set) or --zero-ablation; --units removes only those (e.g. the core: --units core, or a1.h1,a2.mlp). --matching takes apart every subnetwork of --store that matches the full model in-domain (--eval, the reference's rule, as circuits core), one after another, and gives each unit's Δ across them (mean, min, max). Loss is the mean −log p(gold) over the dataset's scoring classes (HANS sums neutral and contradiction). Each variant is one compiled plan of one evaluation pass, so it runs at eval speed. Prints JSON; --svg writes a heatmap of Δloss per dataset (FILE, or FILE-KEY.svg for several)."
        )
        @OptionGroup var modelOptions: ModelOptions
        @Option(help: ArgumentHelp("Dataset (repeat for several).", valueName: "file")) var data: [String] = []
        @OptionGroup var maskOptions: MaskOptions
        @OptionGroup var coreOptions: CoreOptions
        @Option(help: ArgumentHelp("The subnetwork's name in --store.", valueName: "name")) var subnetwork: String?
        @Option(
            help: ArgumentHelp(
                "Remove only these units: a list (a1.h1,a2.mlp) or 'core' (the core of --store's matching subnetworks).",
                valueName: "units")) var units: String?
        @Flag(help: "Take apart each subnetwork of --store that matches the full model in-domain (with --eval).")
        var matching = false
        @Option(help: ArgumentHelp("Mean-activation set of --store (default: its only one).", valueName: "name"))
        var activationSet: String?
        @Option(
            help: "Use a seeded sample of N examples of each set, spread evenly over HANS subcases (else labels).")
        var maxExamples: Int?
        @Option(help: "Seed of the --max-examples sample.") var sampleSeed: UInt64 = 0
        @Option(help: ArgumentHelp("Heatmap of Δloss (accuracy drop without labels).", valueName: "file")) var svg:
            String?
        @OptionGroup var tokenization: TokenizationOptions
        func run() throws {
            guard !data.isEmpty else { throw UsageError("give at least one --data FILE") }
            let (model, tok) = try modelOptions.load()
            if matching && subnetwork != nil { throw UsageError("give --matching or --subnetwork, not both") }
            let evidence =
                try matching || units == "core" ? phrasingSettings { try coreOptions.evidence(model: model) } : nil
            let only = try units.map { spec -> Set<PrunableUnit> in
                let s =
                    try spec == "core"
                    ? senderUnits(evidence!)
                    : phrasingSettings { try parseSenders(spec, layers: model.layerCount, heads: model.headCount) }
                return Set(s.heads.map { PrunableUnit.head($0.layer, $0.head) } + s.mlps.map { PrunableUnit.mlp($0) })
            }
            let prepared = try prepareDatasets(
                data, keys: .init(), skipBadRows: false, limit: maxExamples.map { .sample($0, seed: sampleSeed) },
                model: model,
                tokenizer: tok,
                options: try tokenization.options(positions: model.config.maxPositionEmbeddings), warn: warn)
            let names: [String?] = matching ? evidence!.report.subnetworks : [subnetwork]
            let runs = try names.map { try ablate(model: model, name: $0, only: only, prepared: prepared) }
            if matching { return emit(acrossSubnetworks(runs).pretty) }
            if let svg { try runs[0].writeHeatmaps(svg) }
            emit(runs[0].json.pretty)
        }

        /// One model's ablation: the full model, --mask, or the subnetwork `name` of --store.
        func ablate(model: BertModel, name: String?, only: Set<PrunableUnit>?, prepared: [PreparedDataset]) throws
            -> UnitAblation
        {
            let base = try singleModel(
                store: coreOptions.store, name: name, nameFlag: "--subnetwork", mask: maskOptions,
                activationSet: activationSet, model: model)
            let variants = (only?.count ?? model.layerCount * (model.headCount + 1)) + 1
            let bar = ProgressBar(
                "ablate \(base.name)", total: variants * prepared.reduce(0) { $0 + $1.encodings.count })
            return try ablateUnits(
                model: model, datasets: prepared, base: base.masks, baseName: base.name, ablation: base.ablation,
                only: only, batchSize: 32, progress: bar.update)
        }
    }

    struct Attention: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Every head's attention pattern on pairs: JSON lines, .npy files, one head as an SVG, or --summary: what each head attends to over a sample of HANS pairs.",
            discussion:
                "One JSON line per pair: {\"tokens\", \"attentions\": [layer][head][query][key]} (transformers' output_attentions). --npy DIR writes attention-N.npy (float32 [layers, heads, T, T]) and tokens-N.json per pair; --svg FILE draws one head (--head a4.h3) of the first pair with its tokens. --summary averages, per head, the weight a token puts on the same word in the other sentence (the overlap the heuristic reads; uniform attention's share beside it), on the [SEP]s and on [CLS], over --per-subcase pairs of each of the paper's four plotted HANS subcases (Sources/Circuits/AttentionSummary.swift); with --store the core's heads come first."
        )
        @OptionGroup var modelOptions: ModelOptions
        @OptionGroup var inputs: TextInputOptions
        @OptionGroup var tokenization: TokenizationOptions
        @Option(help: ArgumentHelp("Write .npy files into this folder instead of JSON lines.", valueName: "dir"))
        var npy: String?
        @Option(help: ArgumentHelp("Draw one head of the first pair.", valueName: "file")) var svg: String?
        @Option(help: ArgumentHelp("The head --svg draws.", valueName: "unit")) var head: String = "a0.h0"
        @Flag(help: "Summarise every head over a sample of HANS pairs instead.") var summary = false
        @Option(
            help: ArgumentHelp(
                "With --summary: HANS pairs (default: the evaluation set compiled into hcore).", valueName: "file"))
        var data: String?
        @Option(help: "With --summary: pairs drawn (seeded) from each plotted subcase.") var perSubcase: Int = 25
        @Option(help: "With --summary: seed of the sample.") var seed: UInt64 = 0
        @OptionGroup var coreOptions: CoreOptions
        func run() throws {
            let (model, tok) = try modelOptions.load()
            let options = try tokenization.options(positions: model.config.maxPositionEmbeddings)
            if summary {
                let (_, examples) = try hansSample(
                    data: data, perSubcase: perSubcase, subcases: plottedHANSSubcases, seed: seed)
                let enc = try encodeAll(examples, tokenizer: tok, options: options)
                let core = try coreOptions.store == nil ? [] : coreOptions.evidence(model: model).coreHeads
                let rows = try attentionSummary(model: model, encodings: enc)
                let isCore = { (r: HeadAttentionSummary) in core.contains { $0 == (r.layer, r.head) } }
                let ordered = rows.sorted { (isCore($0) ? 0 : 1, -$0.sameWord) < (isCore($1) ? 0 : 1, -$1.sameWord) }
                emit(
                    "\(enc.count) pairs (\(perSubcase) per plotted subcase, seed \(seed)); weights are means over query tokens"
                )
                emit("head      core  same word (uniform)   [SEP]    [CLS]")
                for r in ordered {
                    emit(
                        PrunableUnit.head(r.layer, r.head).description.padding(
                            toLength: 10, withPad: " ", startingAt: 0)
                            + (isCore(r) ? "yes   " : "      ")
                            + String(
                                format: "%.3f (%.3f)         %.3f    %.3f", r.sameWord, r.sameWordUniform, r.separators,
                                r.cls))
                }
                return
            }
            let encodings = try encodeAll(try inputs.examples(), tokenizer: tok, options: options)
            try dumpAttention(
                model: model, tokenizer: tok, encodings: encodings, npy: npy, svg: svg, head: head, emit: emit)
        }
    }
}
