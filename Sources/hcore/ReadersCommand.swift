// `hcore circuits readers` (aliases patch, reads): which later heads read from the core, by path patching
// against control sender sets.
import ArgumentParser
import Checkpoint
import Circuits
import Eval
import Foundation
import Model
import Store
import Study
import Tokenizer

extension CircuitsCommand {
    struct Readers: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "readers",
            abstract:
                "Which later heads read from the core: path patching from its heads and MLPs, against control sender sets, with FDR-controlled p-values.",
            discussion: """
                Senders: the core (--store, chosen as by `circuits core`; or --core "0.1 2.5 a1.mlp"). They are corrupted (--corrupt: their mean activation; a paired input of the other label; or the same premise with a hypothesis of its subcase that shares none of its content words, which removes the word overlap the core reads) while every other head stays at its clean context and every LayerNorm keeps its clean scale; each later head's query, key or value input then receives what the senders wrote, and the change Δ of the entailment log-odds is measured, with its share of the senders' total effect. --controls sender sets (each core head replaced by a non-core head of its layer, each core MLP by a non-core MLP) give each receiver a p-value (Student t prediction test), adjusted across receivers by Benjamini–Hochberg. Pairs: a seeded sample of --per-subcase pairs of each --subcase (default the paper's four plotted HANS subcases) from --data (default the HANS evaluation set compiled into hcore). Definitions: Sources/Circuits/PatchReport.swift, docs/circuits.md.

                  hcore circuits readers --model DIR --store subs.hcs --eval eval.json \\
                      --activations acts.safetensors
                """,
            aliases: ["patch", "reads"])
        @OptionGroup var modelOptions: ModelOptions
        @Option(
            help: ArgumentHelp(
                "HANS pairs to patch on (default: the evaluation set compiled into hcore).", valueName: "file"))
        var data: String?
        @Option(
            name: .customLong("subcase"),
            help: ArgumentHelp(
                "A subcase to sample pairs from (repeat; default: the paper's four plotted ones; 'all' for every one).",
                valueName: "name")) var subcases: [String] = []
        @Option(help: "Pairs drawn (seeded) from each subcase.") var perSubcase: Int = 25
        @Option(
            help: ArgumentHelp(
                "Mean activations: the senders' corrupted value with --corrupt mean (default: the store's only set).",
                valueName: "file")) var activations: String?
        @Option(
            help: ArgumentHelp(
                "mean (the senders' mean activation), paired (their output on a pair of the other label) or overlap-removed (the same premise, a hypothesis of the subcase without its words).",
                valueName: "kind")) var corrupt = "mean"
        @Option(
            help: ArgumentHelp(
                "The pairs paired and overlap-removed draw partners from (default: all of --data).", valueName: "file"))
        var corruptData: String?
        @Flag(help: "LayerNorms recompute their scales instead of keeping the clean run's.")
        var recomputeLayernorm = false
        @OptionGroup var coreOptions: CoreOptions
        @Option(
            help: ArgumentHelp(
                "Senders (heads layer.head, MLPs aL.mlp) instead of a store's core, space- or comma-separated.",
                valueName: "units")) var core: String?
        @Option(help: "Control sender sets (at least 2; 20 or more for a claim).") var controls: Int = 20
        @Option(help: "Seed of the sample, the controls and the partners.") var seed: UInt64 = 0
        @Flag(help: "Let the other heads recompute (the senders' plain ablation) instead of freezing them.")
        var noFreeze = false
        @Flag(
            help:
                "Also patch inside each matching subnetwork of --store and correlate each receiver's effect with the subnetworks' OOD measure (needs their metrics written back)."
        ) var inside = false
        @Option(
            help: ArgumentHelp(
                "With --inside: the OOD measure in the metadata (default: eval/<hans>/plotted).", valueName: "key"))
        var metric: String?
        @Flag(help: "Print JSON (default: the readers table).") var json = false
        @OptionGroup var tokenization: TokenizationOptions

        func validate() throws {
            guard controls >= 2 else { throw UsageError("--controls must be at least 2 (the t test needs two)") }
            guard perSubcase >= 1 else { throw UsageError("--per-subcase must be at least 1") }
        }

        func run() throws {
            let (model, tok) = try modelOptions.load()
            if controls < 20 { warn("\(controls) controls: fewer than the 20 a claim needs") }
            if inside && (coreOptions.store == nil || core != nil) {
                throw UsageError("--inside patches the matching subnetworks of --store: give --store, not --core")
            }
            let evidence = try core == nil ? phrasingSettings { try coreOptions.evidence(model: model) } : nil
            let senders = try phrasingSettings {
                try core.map { try parseSenders($0, layers: model.layerCount, heads: model.headCount) }
                    ?? senderUnits(evidence!)
            }
            let (pool, examples, sample) = try samplePairs()
            let options = try tokenization.options(positions: model.config.maxPositionEmbeddings)
            let source = try phrasingSettings {
                try PatchCorruptionSource.named(
                    corrupt, activations: { try meanActivations(model) }, pool: corruptData ?? data ?? "",
                    embedded: corruptData == nil && data == nil ? pool : nil, tokenizer: tok, options: options,
                    seed: seed)
            }
            var settings = PatchSettings()
            (settings.freeze, settings.frozenLayerNorm) = (!noFreeze, !recomputeLayernorm)
            let r = try patchReport(
                model: model, examples: examples, encodings: try encodeAll(examples, tokenizer: tok, options: options),
                senders: senders, corruption: source, controls: controls, seed: seed, settings: settings,
                sample: sample, progress: warn)
            guard inside, let evidence else {
                return json ? emit(r.json.pretty) : r.table().forEach(emit)
            }
            let acts = try meanActivations(model)
            guard let acts else { throw UsageError("--inside needs mean activations: give --activations FILE") }
            let within = try insideReport(
                model: model, evidence: evidence, senders: senders, examples: examples,
                encodings: try encodeAll(examples, tokenizer: tok, options: options), activations: acts)
            if json {
                emit(JSONValue.object([("full_model", r.json), ("inside", within.json)]).pretty)
            } else {
                (r.table() + [""] + within.table()).forEach(emit)
            }
        }

        /// The pairs patched: a seeded sample of --per-subcase pairs of each subcase asked for, and it in words.
        func samplePairs() throws -> (pool: Dataset, examples: [Example], sample: String) {
            let wanted = subcases.isEmpty ? plottedHANSSubcases : subcases == ["all"] ? nil : subcases
            let (pool, examples) = try hansSample(data: data, perSubcase: perSubcase, subcases: wanted, seed: seed)
            let sample =
                "\(examples.count) pairs of \(pool.path): \(perSubcase) per subcase of \(wanted?.joined(separator: ", ") ?? "every subcase"), drawn with seed \(seed)"
            return (pool, examples, sample)
        }

        /// Path patching from the core inside each matching subnetwork, against their stored OOD measure.
        func insideReport(
            model: BertModel, evidence: CoreEvidence, senders: PatchSenders, examples: [Example],
            encodings: [Encoding], activations: MeanActivations
        ) throws -> InsideReport {
            let store = try SubnetworkStore.open(path: coreOptions.store!, model: model, warn: warn)
            let names = Set(evidence.report.subnetworks)
            let subs = store.subnetworks.filter { names.contains($0.name) }
            guard let ood = metric ?? defaultOODMetric(subs) else {
                throw UsageError(
                    "--inside needs the subnetworks' OOD measure: give --metric KEY (hcore eval --write-back writes eval/<hans>/plotted)"
                )
            }
            let idKey = evidence.rule.map { $0.metric.hasPrefix("eval/") ? $0.metric : "eval/" + $0.metric }
            let entailedKey = subs.first.flatMap { s -> String? in
                guard case .object(let kv) = s.meta else { return nil }
                return kv.map(\.0).filter { $0.contains("hans") && $0.hasSuffix("/entailment") }.sorted().first
            }
            let inside = try subs.map { s -> InsideSubnetwork in
                guard let m = s.meta.get(ood)?.doubleValue, let a = idKey.flatMap({ s.meta.get($0)?.doubleValue })
                else {
                    throw UsageError(
                        "subnetwork '\(s.name)' lacks '\(ood)' or its in-domain metric in the store: write them back with hcore eval --write-back"
                    )
                }
                return InsideSubnetwork(
                    name: s.name,
                    masks: MaskValues(units: s.mask.map(Float.init), layers: model.layerCount, heads: model.headCount),
                    measure: m, inDomain: a, entailed: entailedKey.flatMap { s.meta.get($0)?.doubleValue })
            }
            let batches = stride(from: 0, to: encodings.count, by: 32).map {
                TokenBatch(Array(encodings[$0..<min(encodings.count, $0 + 32)]))
            }
            return try phrasingSettings {
                try readersInside(
                    model: model, batches: batches, senders: senders, subnetworks: inside, activations: activations,
                    corruption: .mean(activations), measureName: ood, seed: seed, progress: warn)
            }
        }

        func meanActivations(_ model: BertModel) throws -> MeanActivations? {
            if let activations { return try MeanActivations.load(path: activations, model: model, warn: warn) }
            guard let store = coreOptions.store else { return nil }
            return try SubnetworkStore.open(path: store, model: model, warn: warn).meanActivations(
                file: nil, set: nil, model: model, required: false, warn: warn)
        }
    }
}

/// The core's heads and MLPs as senders.
/// `perSubcase` pairs of each of `subcases` (nil: every subcase), drawn with `seed` from `data` or, without it,
/// from the HANS evaluation set compiled into hcore; no pair there is a usage error naming the file.
func hansSample(data: String?, perSubcase: Int, subcases: [String]?, seed: UInt64) throws -> (
    pool: Dataset, examples: [Example]
) {
    let pool = try data.map { try Dataset.loadNonEmpty($0, limit: nil) } ?? EmbeddedHANSFiles.evaluation()
    let picked = perStratumSample(pool.examples, perStratum: perSubcase, strata: subcases, seed: seed)
    guard !picked.isEmpty else { throw UsageError("no pair of \(pool.path) lies in the subcases \(subcases ?? [])") }
    return (pool, picked.map { pool.examples[$0] })
}

func senderUnits(_ e: CoreEvidence) -> PatchSenders { PatchSenders(heads: e.coreHeads, mlps: e.coreMLPs) }
