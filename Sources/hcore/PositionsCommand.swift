// `hcore circuits positions`: where in the pair each core unit matters, and how much of it reaches the
// prediction directly.
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
    struct Positions: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Per core unit: its effect by position (activation patching on [CLS], the premise, the hypothesis, the [SEP]s) and its direct logit attribution.",
            discussion: """
                Units: the core's heads and MLPs (--store, chosen as by `circuits core`) or --core. By position: the unit's output on one part of the pair replaced by its corrupted value (--corrupt mean, paired or overlap-removed, as in `circuits readers`), everything after it recomputed; Δ of the entailment log-odds with its standard error. Direct: the unit's output at [CLS] minus its mean, carried along the residual stream alone through every later LayerNorm at its clean scale, then through the pooler linearised at tanh and the classifier (Sources/Circuits/DirectEffects.swift). Pairs: --per-subcase of each --subcase (default the paper's four plotted ones), seeded.

                  hcore circuits positions --model DIR --store subs.hcs --eval eval.json
                """)
        @OptionGroup var modelOptions: ModelOptions
        @Option(help: ArgumentHelp("HANS pairs (default: the evaluation set compiled into hcore).", valueName: "file"))
        var data: String?
        @Option(
            name: .customLong("subcase"),
            help: ArgumentHelp("A subcase to sample from (repeat; default: the four plotted ones).", valueName: "name"))
        var subcases: [String] = []
        @Option(help: "Pairs drawn (seeded) from each subcase.") var perSubcase: Int = 25
        @Option(
            help: ArgumentHelp("Mean activations (default: the store's only set).", valueName: "file"))
        var activations: String?
        @Option(help: ArgumentHelp("mean, paired or overlap-removed.", valueName: "kind")) var corrupt = "mean"
        @OptionGroup var coreOptions: CoreOptions
        @Option(help: ArgumentHelp("Units instead of a store's core (l.h, aL.mlp).", valueName: "units")) var core:
            String?
        @Option(help: "Seed of the sample and the partners.") var seed: UInt64 = 0
        @Flag(help: "Print JSON (default: a table).") var json = false
        @OptionGroup var tokenization: TokenizationOptions

        func run() throws {
            let (model, tok) = try modelOptions.load()
            let units = try phrasingSettings {
                try core.map { try parseSenders($0, layers: model.layerCount, heads: model.headCount) }
                    ?? senderUnits(coreOptions.evidence(model: model))
            }
            let wanted = subcases.isEmpty ? plottedHANSSubcases : subcases
            let (pool, examples) = try hansSample(data: data, perSubcase: perSubcase, subcases: wanted, seed: seed)
            let options = try tokenization.options(positions: model.config.maxPositionEmbeddings)
            let acts = try meanActivations(model)
            let source = try phrasingSettings {
                try PatchCorruptionSource.named(
                    corrupt, activations: { acts }, pool: data ?? "", embedded: data == nil ? pool : nil,
                    tokenizer: tok, options: options, seed: seed)
            }
            let effects = try positionEffects(
                model: model, examples: examples, encodings: try encodeAll(examples, tokenizer: tok, options: options),
                units: units, corruption: source, activations: acts)
            if json { emit(effects.json.pretty) } else { effects.table.forEach(emit) }
        }

        func meanActivations(_ model: BertModel) throws -> MeanActivations? {
            if let activations { return try MeanActivations.load(path: activations, model: model, warn: warn) }
            guard let store = coreOptions.store else { return nil }
            return try SubnetworkStore.open(path: store, model: model, warn: warn).meanActivations(
                file: nil, set: nil, model: model, required: false, warn: warn)
        }
    }
}
