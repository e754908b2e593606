// `hcore figures`: the paper's figures as SVG from results files alone (Sources/Figures).
import ArgumentParser
import Checkpoint
import Figures

struct FiguresCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "figures",
        abstract:
            "Draw the paper's figures from results files: subnetwork violins and bars, accuracy vs sparsity, effective size, keep-count heatmap.",
        discussion: """
            Inputs are the reference repository's data/eval files, `hcore eval --format heuristic-core` output or `hcore eval` documents, told apart by their shape: a flat table (seed, sparsity, one column per case; row 0 the full model) gives NAME-vplot.svg and NAME-bar.svg; seed → sparsity → case gives NAME.svg (accuracy vs sparsity: ID and OOD means over seeds with a 95% bootstrap band); seed → step → sparsity → case together with the full model's step → case curve gives TASK-effective-size.svg (margin --margin, ID+OOD, ID and OOD series). --store with two --heatmap filters draws the keep counts of the heads over two sets of subnetworks. Default cases are the paper's: MNLI matched/mismatched and the four plotted HANS subcases, or qqp and paws-qqp_0. --json prints the numbers each figure draws.
              hcore figures data/eval/mnli-*.json --out plots
              hcore figures --store subs.hcs --heatmap target_sparsity=0.5 \\
                  --heatmap target_sparsity=0.7 --out plots
            """)
    @Argument(help: "Results files (JSON).") var files: [String] = []
    @Option(help: ArgumentHelp("Folder for the SVG files (created).", valueName: "dir")) var out: String = "figures"
    @Option(parsing: .upToNextOption, help: "Cases of the violins and bars.") var cases: [String] = []
    @Option(parsing: .upToNextOption, help: "In-domain cases of accuracy vs sparsity and effective size.") var idCases:
        [String] = []
    @Option(parsing: .upToNextOption, help: "Out-of-domain cases (e.g. paws-qqp_0).") var oodCases: [String] = []
    @Option(help: "Effective size: a subnetwork is faithful within this margin of the full model.") var margin: Double =
        0.03
    @Option(help: "Seed of the bootstrap bands.") var seed: UInt64 = 0
    @Option(help: ArgumentHelp("Store whose subnetworks the heatmap counts.", valueName: "store")) var store: String?
    @Option(
        help: ArgumentHelp(
            "A metadata filter KEY=VALUE (KEY>=N, KEY<=N) choosing one set for the heatmap; give two.",
            valueName: "cond")) var heatmap: [String] = []
    @Flag(help: "Print the numbers each figure draws as JSON.") var json = false
    func run() throws {
        var o = FigureOptions()
        (o.files, o.store, o.heatmap, o.margin, o.seed, o.cases, o.idCases, o.oodCases) = (
            files, store, heatmap, margin, seed, cases.isEmpty ? nil : cases, idCases.isEmpty ? nil : idCases,
            oodCases.isEmpty ? nil : oodCases
        )
        let figures = try drawFigures(o, warn: warn)
        try writeFigures(figures, to: out)
        if json { emit(JSONValue.object(figures.map { ($0.name, $0.numbers) }).pretty) }
        warn("wrote \(figures.map { $0.name + ".svg" }.joined(separator: ", ")) to \(out)")
    }
}
