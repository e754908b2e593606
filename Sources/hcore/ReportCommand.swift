// `hcore report`: figures and index.html of a study (eval document + store + model).
import ArgumentParser
import Checkpoint
import Circuits
import Eval
import Foundation
import Model
import Report
import Store
import Tokenizer

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract:
            "The verdict on the paper's phenomenon with its tests, SVG figures and an index.html: ID vs OOD per subnetwork, accuracy vs sparsity, keep frequency, the core.",
        discussion: """
            Input: the JSON of `hcore eval --store S --include-full --per-example --data ID --data HANS…` (the full model and the subnetworks on an in-domain set and HANS), the same store and model. Subnetworks match when their in-domain accuracy exceeds the full model's minus --margin (the reference's 3 points); the OOD measure is the mean accuracy on the paper's four plotted HANS subcases (from the HANS set holding most of their pairs). The verdict runs four tests in order — enough matching subnetworks, a span beyond noise, its bootstrap interval against the bar, and what is left after in-domain accuracy and HANS entailed accuracy are regressed out — and names the one that decided (Sources/Report/Verdict.swift). The intervals need --per-example and the evaluated files where the document says they are. The core is `hcore circuits core --eval`'s; who reads it is `hcore circuits readers`' answer on --per-subcase pairs of each plotted subcase.
              hcore eval --model DIR --store subs.hcs --include-full --per-example \\
                  --data dev.jsonl --data hans.txt > eval.json
              hcore report --eval eval.json --store subs.hcs --model DIR --out report/
            """)

    @Option(
        help: ArgumentHelp(
            "Output of hcore eval (with the full model, ≥ 2 datasets, and --per-example for the intervals).",
            valueName: "file"))
    var eval: String
    @Option(help: ArgumentHelp("The store the subnetworks came from.", valueName: "store")) var store: String
    @OptionGroup var modelOptions: ModelOptions
    @Option(
        help: ArgumentHelp(
            "Mean activations for the readers (default: the store's only activation set).", valueName: "file"))
    var activations: String?
    @Option(
        help: ArgumentHelp(
            "HANS pairs the readers are measured on (default: the document's set of the four plotted subcases).",
            valueName: "file")) var data: String?
    @Option(help: "Pairs per plotted subcase for the readers.") var perSubcase: Int = 25
    @Option(help: "Control sender sets for the readers.") var controls: Int = 20
    @Flag(help: "Do not measure the readers (path patching takes a minute or more).") var skipReaders = false
    @Option(
        help: ArgumentHelp(
            "In-domain dataset key in the eval document (default: the first non-HANS one).", valueName: "key")) var id:
        String?
    @Option(
        help: ArgumentHelp(
            "HANS dataset key for the cells and entailed accuracy (default: the one with most subcases).",
            valueName: "key"))
    var ood: String?
    @Option(
        help:
            "A subnetwork matches when its in-domain accuracy exceeds the full model's minus this (0.03: the reference's 3 points)."
    ) var margin: Double = MatchRule.referenceMargin
    @Option(help: "Seed of the bootstrap, the noise permutations and the core's nulls.") var seed: UInt64 = 0
    @Option(help: ArgumentHelp("Output folder.", valueName: "dir")) var out: String
    func run() throws {
        let (doc, (model, tok)) = (try EvalDocument.read(path: eval), try modelOptions.load())
        let s = try SubnetworkStore.open(path: store, model: model, warn: warn)
        var settings = ReportSettings()
        (settings.idKey, settings.oodKey, settings.margin, settings.seed, settings.core.seed) = (
            id, ood, margin, seed, seed
        )
        var r = try phrasingSettings {
            try buildReport(evalDocument: doc, store: s, model: model, settings: settings, warn: warn)
        }
        if !skipReaders, r.coreEvidence != nil {
            guard let path = data ?? r.plottedKey.flatMap({ k in doc.datasets.first { $0.key == k }?.path }) else {
                throw UsageError("give --data HANS to measure the readers on, or --skip-readers")
            }
            guard
                let acts = try s.meanActivations(file: activations, set: nil, model: model, required: false, warn: warn)
            else { throw UsageError("the readers need mean activations: give --activations FILE, or --skip-readers") }
            let ds = try Dataset.loadNonEmpty(path, limit: nil)
            let enc = try encodeAll(ds.examples, tokenizer: tok, options: PredictionOptions(maxLength: doc.maxLength))
            try r.measureReaders(
                model: model, activations: acts, examples: ds.examples, encodings: enc, perSubcase: perSubcase,
                controls: controls, seed: seed, progress: warn)
        }
        try r.write(folder: out)
        emit(r.summary + "\nwrote \(out)/index.html")
    }
}
