// `hcore demo`: the paper's whole story on the embedded default, one stage after another, every stage's
// output left in --out so each can be rerun by hand with the command it names.
import ArgumentParser
import Eval
import Foundation
import Study

struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Fine-tune, prune into subnetworks, evaluate in-domain and on HANS, find the core, write the report.",
        discussion: """
        Stages, each leaving its output in --out:
          1 data         the embedded task from data/hans (Sources/Eval/DemoTask.swift) → data/
          2 finetune     a small BERT from scratch, or --model DIR fine-tuned → model/
          3 activations  mean activations on the training set → activations.safetensors
          4 prune        one L0 run per seed at --target-sparsity → subnetworks.hcs
          5 eval         full model and subnetworks on dev (ID) and HANS (OOD) → eval.json
          6 core         units kept by every subnetwork matching the model ID → core.json
          7 reads        which later heads read from the core → reads.json
          8 report       SVG figures and index.html → report/
        With the defaults it takes about two minutes on 2 cores. --quick shrinks every stage (for tests). With --model (e.g. Tests/Fixtures/models/minilm-nli after scripts/setup-fixtures.sh) expect ~4 minutes of fine-tuning and ~3.5 minutes of pruning per subnetwork on 2 cores; --subnetworks 6 is a good start.
        """)

    @Option(help: ArgumentHelp("Output folder.", valueName: "dir")) var out: String = "demo-out"
    @Option(help: "Number of pruned subnetworks (one seed each).") var subnetworks: Int = 8
    @Option(help: ArgumentHelp("Start from this pretrained folder instead of a small BERT from scratch.", valueName: "dir")) var model: String?
    @Option(help: ArgumentHelp("Folder holding hans/heuristics_{train,evaluation}_set.txt(.zst) (default: the repository's data/).", valueName: "dir")) var dataDir: String?
    @Option(help: "In-domain training pairs.") var trainSize: Int = 4000
    @Option(name: .customLong("num-train-epochs"), help: "Default 10 from scratch, 2 with --model.") var epochsOption: Int?
    @Option(name: .customLong("learning-rate"), help: "Fine-tuning learning rate (default 1e-3 from scratch, 5e-5 with --model).") var learningRate: Double?
    @Option(name: .customLong("target-sparsity"), help: "Default 0.35 from scratch, 0.4 with --model.") var targetSparsityOption: Double?
    @Option(name: .customLong("prune-steps"), help: "Pruning steps per subnetwork (default 300 from scratch, 600 with --model: larger models need longer runs).") var pruneStepsOption: Int?
    @Option var seed: UInt64 = 42
    @Flag(help: "A tiny model and a few steps everywhere (seconds; for tests).") var quick = false
    func run() throws {
        let study = try DemoStudy(out: out, subnetworks: subnetworks, pretrained: model,
                                  dataRoot: try DemoStudy.findData(explicit: dataDir, executable: CommandLine.arguments[0]), trainSize: trainSize,
                                  epochs: epochsOption, learningRate: learningRate, targetSparsity: targetSparsityOption, pruneSteps: pruneStepsOption,
                                  seed: seed, quick: quick)
        let started = Date()
        var bar: ProgressBar? = nil
        let report = try study.run(stage: { i, name, detail in
            warn(String(format: "[%d/8 %5.1fs] %@: %@", i, Date().timeIntervalSince(started), name, detail))
        }, progress: { done, total in bar = bar ?? ProgressBar("prune", total: total); bar?.update(done) })
        emit(report.summary)
    }
}
