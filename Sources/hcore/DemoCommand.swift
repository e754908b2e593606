// `hcore demo`: the paper's whole story on the embedded default, one stage after another, every stage's
// output left in --out so each can be rerun by hand with the command it names.
import ArgumentParser
import Checkpoint
import Circuits
import Eval
import Failures
import Foundation
import Kernels
import Model
import Prune
import Report
import Tokenizer
import Train

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
        With the defaults it takes about two minutes on 2 cores. --quick shrinks every stage (for tests). \
        With --model (e.g. Tests/Fixtures/models/minilm-nli after scripts/setup-fixtures.sh) expect ~4 minutes of \
        fine-tuning and ~3.5 minutes of pruning per subnetwork on 2 cores; --subnetworks 6 is a good start.
        """)

    @Option(help: ArgumentHelp("Output folder.", valueName: "dir")) var out: String = "demo-out"
    @Option(help: "Number of pruned subnetworks (one seed each).") var subnetworks: Int = 8
    @Option(help: ArgumentHelp("Start from this pretrained folder instead of a small BERT from scratch.", valueName: "dir")) var model: String?
    @Option(help: ArgumentHelp("Folder holding hans/heuristics_{train,evaluation}_set.txt(.zst) (default: the repository's data/).", valueName: "dir")) var dataDir: String?
    @Option(help: "In-domain training pairs.") var trainSize: Int = 4000
    @Option(name: .customLong("num-train-epochs"), help: "Default 10 from scratch, 2 with --model.") var epochsOption: Int?
    var epochs: Int { epochsOption ?? (model == nil ? 10 : 2) }
    @Option(name: .customLong("learning-rate"), help: "Fine-tuning learning rate (default 1e-3 from scratch, 5e-5 with --model).") var learningRate: Double?
    @Option(name: .customLong("target-sparsity"), help: "Default 0.35 from scratch, 0.4 with --model.") var targetSparsityOption: Double?
    @Option(name: .customLong("prune-steps"), help: "Pruning steps per subnetwork (default 300 from scratch, 600 with --model: larger models need longer runs).") var pruneStepsOption: Int?
    var targetSparsity: Double { targetSparsityOption ?? (model == nil ? 0.35 : 0.4) }
    var pruneSteps: Int { pruneStepsOption ?? (model == nil ? 300 : 600) }
    @Option var seed: UInt64 = 42
    @Flag(help: "A tiny model and a few steps everywhere (seconds; for tests).") var quick = false

    func findData() throws -> String {
        var candidates: [String] = []
        if let dataDir { candidates.append(dataDir) }
        candidates.append(FileManager.default.currentDirectoryPath + "/data")
        let exe = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        candidates.append(exe.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path + "/data")  // .build/release/hcore
        for c in candidates {
            for ext in ["", ".zst"] where FileManager.default.fileExists(atPath: c + "/hans/heuristics_train_set.txt" + ext) { return c }
        }
        throw CLIError("cannot find hans/heuristics_train_set.txt(.zst) under \(candidates.joined(separator: ", ")); run from the repository or pass --data-dir", code: .badInput)
    }

    func run() throws {
        guard subnetworks >= 1, (0..<1).contains(targetSparsity), pruneSteps >= 1, trainSize >= 20, epochs >= 1 else {
            throw CLIError("--subnetworks, --prune-steps and --num-train-epochs must be ≥ 1, --train-size ≥ 20, --target-sparsity in [0, 1)")
        }
        let started = Date()
        let stages = 8
        func stage(_ i: Int, _ name: String, _ detail: String) {
            warn(String(format: "[%d/%d %5.1fs] %@: %@", i, stages, Date().timeIntervalSince(started), name, detail))
        }
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)

        // 1 — data
        let dataRoot = try findData()
        func hans(_ base: String) throws -> Dataset {
            let p = dataRoot + "/hans/" + base
            return try Dataset.load(FileManager.default.fileExists(atPath: p) ? p : p + ".zst")
        }
        let trainPairs = quick ? min(trainSize, 400) : trainSize
        let task = try DemoTask.build(hansTrain: try hans("heuristics_train_set.txt").examples, hansEval: try hans("heuristics_evaluation_set.txt").examples,
                                      trainSize: trainPairs, devSize: quick ? 200 : 1000, oodStride: quick ? 100 : 10, seed: 2024)
        let paths = try task.write(folder: out + "/data")
        stage(1, "data", "\(task.train.count) train / \(task.dev.count) dev in-domain pairs (45% high-overlap entailed, 45% low-overlap non-entailed, 10% high-overlap non-entailed from 3 HANS subcases), \(task.ood.count) HANS pairs → \(out)/data")

        // 2 — finetune
        let modelDir = out + "/model"
        let trainSet = Dataset(name: "train.jsonl", path: paths.train, format: .jsonl, examples: task.train)
        let devSet = Dataset(name: "dev.jsonl", path: paths.dev, format: .jsonl, examples: task.dev)
        let oodSet = Dataset(name: "heuristics_evaluation_subset.txt", path: paths.ood, format: .hans, examples: task.ood)
        var fc = FinetuneConfig()
        fc.epochs = quick ? 1 : epochs; fc.batchSize = 32; fc.seed = seed; fc.warmupRatio = 0.1
        let trainable: TrainableBert, tokenizer: BertTokenizer, vocabulary: [String]
        if let model {
            let m = try BertModel.load(folder: model)
            tokenizer = try BertTokenizer.load(folder: model)
            vocabulary = tokenizer.idToToken
            trainable = try TrainableBert(model: m, labels: DemoTask.labels, seed: seed)
            fc.learningRate = learningRate ?? 5e-5
        } else {
            vocabulary = try task.vocabulary()
            tokenizer = try BertTokenizer(vocabulary: vocabulary)
            trainable = TrainableBert(config: (quick ? ConfigPreset.tiny : .small).config(vocabSize: vocabulary.count, labels: DemoTask.labels), seed: seed)
            fc.learningRate = learningRate ?? 1e-3
            fc.dropout = 0   // from scratch on a few thousand pairs, dropout only slows learning (measured: dev 77% with 0.1, 86% without)
        }
        let history = try finetuneAndSave(trainable, tokenizer: tokenizer, vocabulary: vocabulary, train: trainSet, dev: devSet,
                                          config: fc, maxLength: 128, out: modelDir, quiet: true)
        stage(2, "finetune", String(format: "%d parameters, %d steps, final loss %.3f, dev accuracy %.3f → %@ (hcore finetune)",
                                    trainable.parameterCount, history.count, history.last!.loss, history.last!.devAccuracy ?? .nan, modelDir))

        // 3 — activations
        let bert = try BertModel.load(folder: modelDir)
        let opts = PredictionOptions(maxLength: 128)
        let trainEnc = try encodeAll(task.train, tokenizer: tokenizer, options: opts)
        let acc = ActivationAccumulator(model: bert)
        for start in stride(from: 0, to: trainEnc.count, by: 64) {
            try bert.encode(TokenBatch(Array(trainEnc[start..<min(trainEnc.count, start + 64)])), observer: acc).deallocate()
        }
        let activations = acc.result(fingerprint: bert.fingerprint)
        let actsPath = out + "/activations.safetensors"
        try activations.write(path: actsPath, model: bert, extraMetadata: ["dataset": paths.train])
        stage(3, "activations", "mean activations over \(acc.tokens) tokens → \(actsPath) (hcore activations)")

        // 4 — prune
        let storePath = out + "/subnetworks.hcs"
        if FileManager.default.fileExists(atPath: storePath) { try FileManager.default.removeItem(atPath: storePath) }
        let store = try SubnetworkStore.create(path: storePath, fingerprint: bert.fingerprint, layout: StoreLayout(layers: bert.layerCount, heads: bert.headCount))
        let actBytes = try readDataFile(actsPath)
        try store.addActivations(name: "train", safetensors: actBytes)
        var pc = PruneConfig()
        pc.targetSparsity = targetSparsity
        pc.maxSteps = quick ? 12 : pruneSteps
        pc.sparsityWarmupSteps = pc.maxSteps * 2 / 3
        pc.warmupSteps = max(1, pc.maxSteps / 15)
        pc.gradientAccumulationSteps = 1
        pc.batchSize = 32
        pc.initialLogAlpha = 3      // a 300-step run cannot wait for gates started at the paper's 10 to open
        pc.dropout = fc.dropout      // the subnetwork in training mode, with the dropout the model was trained with
        let progress = Progress("prune", total: subnetworks * pc.maxSteps)
        for k in 0..<subnetworks {
            pc.seed = seed + UInt64(k)
            let t0 = Date()
            let r = try prune(model: bert, encodings: trainEnc, activations: activations, config: pc, onStep: { st in progress.update(k * pc.maxSteps + st.step + 1) })
            let last = r.history.last!
            try store.add([StoredSubnetwork(name: "seed\(pc.seed)", mask: r.masks.units.map { UInt8($0) }, logAlpha: r.logAlpha, meta: .object([
                ("seed", .int(Int(pc.seed))), ("target_sparsity", .float(targetSparsity)), ("sparsity", .float(r.achievedSparsity)),
                ("steps", .int(pc.maxSteps)), ("final_kl", .float(last.kl)), ("source", .string("hcore demo")),
                ("seconds", .float(Date().timeIntervalSince(t0))),
            ]))])
        }
        stage(4, "prune", "\(subnetworks) subnetworks at target sparsity \(targetSparsity), \(pc.maxSteps) steps each → \(storePath) (hcore prune)")

        // 5 — eval
        let stored = store.subnetworks
        var targets = [EvalTarget(name: "full", index: 0, sparsity: 0, seed: .string("original"), masks: nil)]
        for sub in stored {
            targets.append(EvalTarget(name: sub.name, index: targets.count, sparsity: 1 - Double(sub.mask.reduce(0) { $0 + Int($1) }) / Double(sub.mask.count),
                                      seed: sub.meta.get("seed") ?? .null, masks: MaskValues(units: sub.mask.map(Float.init), layers: bert.layerCount, heads: bert.headCount)))
        }
        let prepared = [try PreparedDataset(dataset: devSet, model: bert, tokenizer: tokenizer, options: opts),
                        try PreparedDataset(dataset: oodSet, model: bert, tokenizer: tokenizer, options: opts)]
        let evalStart = Date()
        let results = try evaluateTargets(model: bert, datasets: prepared, targets: targets, ablation: .mean(activations), batchSize: 64, keepLogits: false)
        let doc = evalDocument(modelPath: modelDir, model: bert, store: storePath, ablation: "mean", maskMode: "binary", maxLength: 128, shard: "1/1",
                               subnetworksTotal: targets.count, prepared: prepared, results: results, started: evalStart)
        try writeAtomically(Array((doc.pretty + "\n").utf8), to: out + "/eval.json")
        try store.updateMeta(results.dropFirst().map { r in
            (name: r.target.name, meta: prepared.enumerated().map { (i, d) in ("eval/\(d.referenceKey)", JSONValue.float(r.metrics[i].accuracy)) })
        })
        stage(5, "eval", String(format: "full model: dev %.3f, HANS %.3f; %d subnetworks → %@/eval.json (hcore eval)",
                                results[0].metrics[0].accuracy, results[0].metrics[1].accuracy, stored.count, out))

        // 6–8 — core, reads, report
        let report = try buildReport(evalDocument: doc, store: store, model: bert, activations: activations,
                                     oodEncodings: prepared[1].encodings, idKey: prepared[0].referenceKey, oodKey: "hans")
        try writeAtomically(Array((report.core.json.pretty + "\n").utf8), to: out + "/core.json")
        stage(6, "core", "\(report.core.core.count) units kept by all \(report.core.subnetworks.count) subnetworks" + (report.coreOverMatching ? " within 2 points of the full model in-domain" : " (fewer than 2 within 2 points in-domain)") + " → core.json (hcore circuits core)")
        if let reads = report.reads {
            try writeAtomically(Array((reads.json.pretty + "\n").utf8), to: out + "/reads.json")
            stage(7, "reads", "\(reads.reads.count) later heads measured on \(reads.examples) HANS pairs → reads.json (hcore circuits reads)")
        } else {
            stage(7, "reads", "skipped: the core has no attention head")
        }
        try report.write(folder: out + "/report")
        stage(8, "report", "\(out)/report/index.html (hcore report)")
        emit(report.summary)
    }
}
