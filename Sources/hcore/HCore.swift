// The root command: its subcommands, one file each (or one file per group).
import ArgumentParser
import BuildInfo

struct HCore: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hcore",
        abstract: "Run, prune and dissect finetuned BERT classifiers on CPUs.",
        discussion: """
            hcore loads Hugging Face BERT folders unchanged and implements "The Heuristic Core" (Bhaskar, Friedman, Chen, ACL 2024): subnetworks as head/MLP masks with mean ablation, evaluated exactly and with pruned units really skipped.

            Exit codes: 0 ok, 1 internal error, 2 usage, 3 bad input file, 4 model/mask/activation mismatch, 5 write failed, 130 interrupted.
            """,
        version: HCore.versionLine,
        subcommands: [
            EvalCommand.self, Predict.self, Tokenize.self, Info.self, Activations.self, Importance.self,
            PruneCommand.self,
            StoreCommand.self, CircuitsCommand.self, Finetune.self, ReportCommand.self, FiguresCommand.self, Demo.self,
        ])

    /// The version, and the commit a packaged binary was built from (`hcore --version`).
    static let version = "0.3.0"
    static var versionLine: String {
        let commit = String(cString: hcore_build_commit())
        return "hcore \(version) ("
            + (commit.isEmpty ? "built from a checkout; scripts/package.sh records the commit" : "commit \(commit)")
            + ")"
    }
}
