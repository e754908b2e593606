// `hcore report`: figures and index.html of a study (eval document + store + model).
import ArgumentParser
import Checkpoint
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
            "SVG figures and an index.html: ID vs OOD per subnetwork, accuracy vs sparsity, keep frequency, the core and its readers.",
        discussion: """
            Input: the JSON of `hcore eval --store S --include-full --data ID --data OOD` (the full model and the subnetworks on an in-domain and an out-of-domain set), the same store and model. The core is the set of units kept by every subnetwork within --match-points of the full model in-domain. With activations (--activations, or the store's only activation set) and --data, it also measures which later heads read from the core: each alone given the core-ablated layer input (Sources/Circuits/Reads.swift; `hcore circuits patch` measures it by path patching).
              hcore eval --model DIR --store subs.hcs --include-full --data dev.jsonl \\
                  --data hans.txt > eval.json
              hcore report --eval eval.json --store subs.hcs --model DIR --data hans.txt \\
                  --out report/
            """)

    @Option(help: ArgumentHelp("Output of hcore eval (with the full model and ≥ 2 datasets).", valueName: "file"))
    var eval: String
    @Option(help: ArgumentHelp("The store the subnetworks came from.", valueName: "store")) var store: String
    @OptionGroup var modelOptions: ModelOptions
    @Option(
        help: ArgumentHelp(
            "Mean activations for the reads (default: the store's only activation set).", valueName: "file"))
    var activations: String?
    @Option(help: ArgumentHelp("OOD data for the reads (omit to skip them).", valueName: "file")) var data: String?
    @Option(
        help: ArgumentHelp(
            "In-domain dataset key in the eval document (default: the first non-HANS one).", valueName: "key")) var id:
        String?
    @Option(help: ArgumentHelp("Out-of-domain dataset key (default: HANS, else the second).", valueName: "key"))
    var ood: String?
    @Option(
        help:
            "Subnetworks within this many accuracy points of the full model in-domain count as matching it (3: the reference's effective-size margin)."
    ) var matchPoints: Double = 3
    @Option(help: ArgumentHelp("Output folder.", valueName: "dir")) var out: String
    func run() throws {
        let (doc, (model, tok)) = (try EvalDocument.read(path: eval), try modelOptions.load())
        let s = try SubnetworkStore.open(path: store, model: model, warn: warn)
        let acts = try s.meanActivations(file: activations, set: nil, model: model, required: false, warn: warn)
        let enc = try data.map {
            try encodeAll(Dataset.load($0, limit: 500).examples, tokenizer: tok, options: PredictionOptions())
        }
        let r = try buildReport(
            evalDocument: doc, store: s, model: model, activations: acts, oodEncodings: enc, idKey: id, oodKey: ood,
            matchPoints: matchPoints)
        try r.write(folder: out)
        emit(r.summary + "\nwrote \(out)/index.html")
    }
}
