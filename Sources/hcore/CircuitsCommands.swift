// `hcore circuits …`: the heuristic core of a store, and how later heads compose with it.
import ArgumentParser
import Checkpoint
import Eval
import Circuits
import Failures
import Foundation
import Model

struct CircuitsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "circuits",
        abstract: "Find the heuristic core of a store and measure which heads compose with it.",
        discussion: """
          hcore circuits core --store subs.hcs --where 'eval/mnli-matched>=0.80' --metric eval/hans --svg core.svg
          hcore circuits compose --model DIR --json > composition.json
          hcore circuits compose --model DIR --store subs.hcs --svg compose.svg --dot core.dot
        """,
        subcommands: [Core.self, Compose.self, Reads.self])

    struct Core: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Keep frequency of every head and MLP across subnetworks; the core; presence–metric correlations.")
        @Option(help: ArgumentHelp("The store.", valueName: "store")) var store: String
        @OptionGroup var filter: StoreFilter
        @Option(help: "The core is the units kept by at least this fraction of the subnetworks.") var fraction: Double = 1.0
        @Option(help: ArgumentHelp("Correlate each unit's presence with this metadata key (e.g. eval/hans).", valueName: "key")) var metric: String?
        @Flag(help: "Print JSON (default: a table).") var json = false
        @Flag(help: "Print CSV.") var csv = false
        @Option(help: ArgumentHelp("Write an SVG heatmap of keep frequencies.", valueName: "file")) var svg: String?
        func run() throws {
            guard (0...1).contains(fraction) else { throw CLIError("--fraction must lie in [0, 1]") }
            let s = try SubnetworkStore.open(path: store)
            let subs = try filter.apply(s.subnetworks)
            guard !subs.isEmpty else { throw CLIError("no subnetworks match", code: .badInput) }
            let r = findCore(subs, layout: s.layout, fraction: fraction, metric: metric)
            if let svg {
                let H = s.layout.heads, LH = s.layout.layers * H
                let text = svgHeatmap(title: "Keep frequency over \(subs.count) subnetworks", layers: s.layout.layers, heads: H,
                                      values: { r.keepFrequency[$0 * H + $1] }, mlp: { r.keepFrequency[LH + $0] },
                                      highlight: Set(r.core.map { r.name($0).description }), legend: "fraction of subnetworks keeping the unit")
                try writeAtomically(Array(text.utf8), to: svg)
            }
            if json { emit(r.json.pretty); return }
            if csv { FileHandle.standardOutput.write(Data(r.csv.utf8)); return }
            emit("core (kept by ≥ \(fraction * 100)% of \(subs.count) subnetworks): \(r.core.map { r.name($0).description }.joined(separator: " "))")
            for l in 0..<s.layout.layers {
                let row = (0..<s.layout.heads).map { String(format: "%4.2f", r.keepFrequency[l * s.layout.heads + $0]) }.joined(separator: " ")
                emit("layer \(l): \(row)   mlp \(String(format: "%4.2f", r.keepFrequency[s.layout.layers * s.layout.heads + l]))")
            }
            if let metric {
                let ranked = r.correlation.indices.compactMap { u in r.correlation[u].map { (u, $0) } }.sorted { abs($0.1) > abs($1.1) }.prefix(10)
                emit("units whose presence tracks \(metric) most: " + ranked.map { "\(r.name($0.0)) \(String(format: "%+.2f", $0.1))" }.joined(separator: ", "))
            }
        }
    }

    struct Compose: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Weight-based Q/K/V composition between heads (Elhage et al. 2021), with a random baseline.",
            discussion: "Scores are ‖W_OV^A W_QK^B‖_F / (‖W_OV^A‖_F ‖W_QK^B‖_F) and likewise (see Sources/Circuits/Composition.swift); biases are ignored. With --store, the core (units every subnetwork keeps, or --fraction) is highlighted and each later head's strongest composition with it is drawn.")
        @OptionGroup var modelOptions: ModelOptions
        @Flag(help: "Fold the gain of the LayerNorm before the reading head's layer into its weights.") var foldLayernorm = false
        @Option(help: ArgumentHelp("A store whose core to highlight.", valueName: "store")) var store: String?
        @Option(help: "Core threshold with --store.") var fraction: Double = 1.0
        @Flag(help: "Print JSON (the default).") var json = false
        @Flag(help: "Print CSV instead.") var csv = false
        @Option(help: ArgumentHelp("SVG heatmap: each head's strongest composition with the core (or any earlier head).", valueName: "file")) var svg: String?
        @Option(help: ArgumentHelp("DOT graph of the strongest core → head edges.", valueName: "file")) var dot: String?
        @Option(help: "Edges in the DOT graph.") var top: Int = 20
        func run() throws {
            let model = try BertModel.load(folder: modelOptions.model)
            let scores = composition(factors: headFactors(model: model, foldLayerNorm: foldLayernorm), hidden: model.hidden, headDim: model.headDim)
            let base = compositionBaseline(hidden: model.hidden, headDim: model.headDim)
            var core = Set<String>()
            if let store {
                let s = try SubnetworkStore.open(path: store)
                try checkStore(s, model: model)
                let r = findCore(s.subnetworks, layout: s.layout, fraction: fraction)
                core = Set(r.core.map(r.name).filter { !$0.isMLP }.map(\.description))
            }
            func name(_ p: (layer: Int, head: Int)) -> String { PrunableUnit.head(p.layer, p.head).description }
            let fromCore = core.isEmpty ? scores : scores.filter { core.contains(name($0.from)) }
            if let svg {
                var best = [String: Double]()
                for s in fromCore { best[name(s.to)] = max(best[name(s.to)] ?? 0, s.q, s.k, s.v) }
                let maxV = max(0.1, best.values.max() ?? 0.1)
                let text = svgHeatmap(title: core.isEmpty ? "Strongest composition with any earlier head" : "Strongest composition with the core",
                                      layers: model.layerCount, heads: model.headCount, values: { best[PrunableUnit.head($0, $1).description] }, highlight: core, maxValue: maxV,
                                      legend: String(format: "max of Q/K/V scores; random baseline Q %.3f K %.3f V %.3f", base.q, base.k, base.v))
                try writeAtomically(Array(text.utf8), to: svg)
            }
            if let dot {
                let edges = fromCore.flatMap { s in [("Q", s.q), ("K", s.k), ("V", s.v)].map { (s, $0.0, $0.1) } }
                    .sorted { $0.2 > $1.2 }.prefix(top)
                    .map { (from: name($0.0.from), to: name($0.0.to), label: "\($0.1) \(String(format: "%.2f", $0.2))", weight: $0.2) }
                try writeAtomically(Array(dotGraph(name: "composition", edges: Array(edges), core: core).utf8), to: dot)
            }
            if csv {
                var rows = ["from_layer,from_head,to_layer,to_head,q,k,v"]
                for s in scores { rows.append("\(s.from.layer),\(s.from.head),\(s.to.layer),\(s.to.head),\(s.q),\(s.k),\(s.v)") }
                FileHandle.standardOutput.write(Data((rows.joined(separator: "\n") + "\n").utf8))
                return
            }
            emit(JSONValue.object([
                ("scores", .array(scores.map { s in .object([("from", [.int(s.from.layer), .int(s.from.head)]), ("to", [.int(s.to.layer), .int(s.to.head)]),
                                                          ("q", .float(s.q)), ("k", .float(s.k)), ("v", .float(s.v))]) })),
                ("baseline", .object([("q", .float(base.q)), ("k", .float(base.k)), ("v", .float(base.v))])),
                ("fold_layernorm", .bool(foldLayernorm)),
                ("core", .array(core.sorted().map { .string($0) })),
            ]).pretty)
        }
    }
}

extension CircuitsCommand {
    struct Reads: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Which later heads read from the core: B alone is given the input of a run with the core mean-ablated.",
            discussion: """
            For each head B after the first core layer, relative changes of B's query, key and value inputs and of \
            its output when only B sees the core-ablated layer input (all other heads and layers stay clean); and the \
            logit change when the core is ablated (see Sources/Circuits/Reads.swift).
              hcore circuits reads --model DIR --store subs.hcs --data data/hans/heuristics_evaluation_set.txt.zst --max-examples 500 --activations acts.safetensors
            The core comes from --store (units every subnetwork keeps, or --fraction) or --core "0.3 1.7 2.2" (layer.head).
            """)
        @OptionGroup var modelOptions: ModelOptions
        @Option(help: ArgumentHelp("Dataset the reads are measured on.", valueName: "file")) var data: String
        @Option(help: "Use only the first N examples.") var maxExamples: Int = 500
        @Option(help: ArgumentHelp("Mean activations (`hcore activations`) used to ablate the core.", valueName: "file")) var activations: String
        @Option(help: ArgumentHelp("A store whose core to use.", valueName: "store")) var store: String?
        @Option(help: "Core threshold with --store.") var fraction: Double = 1.0
        @Option(help: ArgumentHelp("Core heads as layer.head, space- or comma-separated.", valueName: "heads")) var core: String?
        @Flag(help: "Print JSON (default: a table).") var json = false
        @Flag(help: "Print CSV.") var csv = false
        @OptionGroup var tokenization: TokenizationOptions

        func run() throws {
            let (model, tok) = try modelOptions.load()
            let (acts, warning) = try MeanActivations.load(path: activations, model: model)
            if let warning { warn("warning: \(warning)") }
            var heads: [(layer: Int, head: Int)] = []
            if let core {
                for item in core.split(whereSeparator: { $0 == " " || $0 == "," }) {
                    let p = item.split(separator: ".").compactMap { Int($0) }
                    guard p.count == 2, (0..<model.layerCount).contains(p[0]), (0..<model.headCount).contains(p[1]) else {
                        throw CLIError("--core: '\(item)' is not layer.head within \(model.layerCount)×\(model.headCount)")
                    }
                    heads.append((p[0], p[1]))
                }
            } else if let store {
                let s = try SubnetworkStore.open(path: store)
                try checkStore(s, model: model)
                let r = findCore(s.subnetworks, layout: s.layout, fraction: fraction)
                heads = r.core.compactMap { u in r.name(u).head.map { (r.name(u).layer, $0) } }
            } else {
                throw CLIError("give --store S or --core \"l.h …\"")
            }
            guard !heads.isEmpty else { throw CLIError("the core has no heads (lower --fraction?)", code: .badInput) }
            let ds = try Dataset.load(data, limit: maxExamples)
            let enc = try encodeAll(ds.examples, tokenizer: tok, options: PredictionOptions(maxLength: tokenization.maxLength, truncation: try tokenization.strategy()))
            let batches = lengthSortedBatches(enc, batchSize: 32).map { TokenBatch($0.map { enc[$0] }) }
            let r = try coreReads(model: model, batches: batches, core: heads, activations: acts)
            if csv {
                var rows = ["layer,head,dq,dk,dv,dout"]
                for h in r.reads { rows.append("\(h.layer),\(h.head),\(h.dq),\(h.dk),\(h.dv),\(h.dout)") }
                FileHandle.standardOutput.write(Data((rows.joined(separator: "\n") + "\n").utf8))
                return
            }
            if json {
                emit(r.json.pretty)
                return
            }
            emit("core: " + heads.map { PrunableUnit.head($0.layer, $0.head).description }.joined(separator: " ")
                 + String(format: "   ablating it: mean |Δlogit| %.4f, KL %.5f over %d examples", r.meanAbsLogitChange, r.klCleanToAblated, r.examples))
            emit("head      Δout    Δq      Δk      Δv")
            for h in r.reads.prefix(20) { emit(String(format: "a%d.h%-3d  %.4f  %.4f  %.4f  %.4f", h.layer, h.head, h.dout, h.dq, h.dk, h.dv)) }
        }
    }
}
