// `hcore finetune`: full fine-tuning of a BERT classifier into a Hugging Face folder.
import ArgumentParser
import Checkpoint
import Eval
import Failures
import Foundation
import Train

struct Finetune: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Fine-tune a BERT classifier (all weights) and write a Hugging Face folder.",
        discussion: """
            Starts from a pretrained folder (--model) or from scratch (--config tiny|small|config.json, with a word-level vocabulary built from the training and dev files unless --vocab is given). Cross-entropy, AdamW with weight decay on every weight except biases and LayerNorm weights, linear warm-up over --warmup-ratio of the steps then linear decay, gradients accumulated over --gradient-accumulation-steps batches and clipped to a global norm of --max-grad-norm, BERT's dropout as transformers applies it in training (hidden dropout and dropout on the attention probabilities, from the config unless --dropout / --attention-dropout). The output folder (config.json, model.safetensors, vocab.txt, tokenizer_config.json) loads in transformers and in every hcore command; --save-steps N also keeps OUT/checkpoint-STEP/ folders every N steps, for the paper's learning-dynamics grid (`hcore eval --checkpoints OUT`).

            Defaults are run_glue.py's under HF's Trainer (the reference's src/ft/run_glue.py) — learning rate 5e-5, 3 epochs, weight decay 0, no warm-up, clipping at 1.0, 128 tokens, seed 42 — except the batch: 32, the paper's, where the Trainer's default is 8. The paper fine-tuned bert-base-cased with the reference's scripts/ft.sh: --learning-rate 2e-5 --max-steps 61360 (MNLI; QQP 40000 steps of 128 pairs), batch 32, 128 tokens, seed 42. Flags keep run_glue's names in either spelling (--learning_rate or --learning-rate; --model_name_or_path, --output_dir, --per_gpu_train_batch_size are --model, --out, --per-device-train-batch-size).

              hcore finetune --config small --train train.jsonl --dev dev.jsonl \\
                  --out runs/small --num-train-epochs 4
              hcore finetune --model Tests/Fixtures/models/minilm-nli --train train.jsonl \\
                  --out runs/minilm --learning-rate 3e-5 --save-steps 500
            """)

    @Option(help: ArgumentHelp("Pretrained folder to start from.", valueName: "dir")) var model: String?
    @Option(help: ArgumentHelp("From scratch: tiny, small, or a config.json path.", valueName: "preset")) var config:
        String?
    @Option(
        help: ArgumentHelp(
            "vocab.txt for --config (default: the words of the training and dev files).", valueName: "file")) var vocab:
        String?
    @Option(help: ArgumentHelp("Training set (JSONL, CSV, GLUE TSV, HANS; .zst).", valueName: "file")) var train: String
    @Option(help: ArgumentHelp("Dev set, evaluated every --eval-steps and at the end.", valueName: "file")) var dev:
        String?
    @Option(help: ArgumentHelp("Output folder.", valueName: "dir")) var out: String
    @Option(
        help: ArgumentHelp(
            "Label names in class order (default: the model's, or the training file's labels sorted).",
            valueName: "a,b,…")) var labels: String?
    @Option(name: .customLong("num-train-epochs"), help: "Passes over the training set (--num_train_epochs).")
    var epochs: Int = 3
    @Option(name: .customLong("per-device-train-batch-size"), help: "Pairs per batch (--per_device_train_batch_size).")
    var batchSize: Int = 32
    @Option(
        name: .customLong("learning-rate"),
        help: "Peak learning rate (--learning_rate; run_glue's default 5e-5, the paper's 2e-5).") var learningRate:
        Double = 5e-5
    @Option(
        name: .customLong("weight-decay"),
        help: "AdamW weight decay, not on biases and LayerNorm weights (--weight_decay).") var weightDecay: Double = 0
    @Option(
        name: .customLong("warmup-ratio"),
        help: "Fraction of the steps the learning rate warms up over (--warmup_ratio).") var warmupRatio: Double = 0
    @Option(
        name: .customLong("max-steps"),
        help: "Stop after N optimizer steps (--max_steps; epochs repeat as needed, overrides --num-train-epochs).")
    var maxSteps: Int?
    @Option(
        name: .customLong("gradient-accumulation-steps"),
        help: "Batches per optimizer step (--gradient_accumulation_steps).") var accumulation: Int = 1
    @Option(
        name: .customLong("max-grad-norm"),
        help: "Clip the global gradient norm to this before each step (--max_grad_norm; 0: off).") var maxGradNorm:
        Double = 1.0
    @Option(
        name: .customLong("save-steps"),
        help: "Also write OUT/checkpoint-STEP/ every N steps (--save_steps; 0: only the final model).") var saveSteps:
        Int = 0
    @Option(help: "Hidden dropout probability (default: the config's hidden_dropout_prob).") var dropout: Float?
    @Option(help: "Attention-probability dropout (default: the config's attention_probs_dropout_prob).")
    var attentionDropout: Float?
    @Option(name: .customLong("eval-steps"), help: "Evaluate on --dev every N steps (0: at the end only).")
    var evalSteps: Int = 0
    @Option var seed: UInt64 = 42
    @Option(name: .customLong("max-seq-length"), help: "Truncate pairs to this many tokens (--max_seq_length).")
    var maxLength: Int = 128
    @Option(name: .customLong("max-train-samples"), help: "Use the first N training pairs (--max_train_samples).")
    var maxTrainSamples: Int?
    @Flag(
        help:
            "Write into an --out that already holds files, replacing the model files there (--overwrite_output_dir); without it such a folder is refused, as the Trainer refuses it: a tokenizer or weights left from another model would be read with the new ones."
    ) var overwriteOutputDir = false
    func run() throws {
        var c = FinetuneConfig()
        (
            c.epochs, c.batchSize, c.learningRate, c.weightDecay, c.warmupRatio, c.dropout, c.seed, c.evalEvery,
            c.maxSteps, c.gradientAccumulationSteps, c.maxGradNorm
        ) = (
            epochs, batchSize, learningRate, weightDecay, warmupRatio, dropout, seed, evalSteps, maxSteps, accumulation,
            maxGradNorm
        )
        c.attentionDropout = attentionDropout
        try c.validate(saveSteps: saveSteps)
        try FinetuneStart.checkChoice(model: model, config: config)
        let trainSet = try Dataset.loadNonEmpty(train, limit: maxTrainSamples)
        let devSet = try dev.map { try Dataset.load($0) }
        let start = try FinetuneStart.choose(
            model: model, config: config, vocab: vocab, labels: labels, train: trainSet, dev: devSet,
            maxLength: maxLength, seed: seed)
        warn(
            "fine-tuning \(start.model.parameterCount) parameters on \(trainSet.count) examples, labels \(start.model.config.labels)"
        )
        let started = Date()
        var bar: ProgressBar? = nil
        let history = try withReplaceFlag("--overwrite-output-dir") {
            try finetuneAndSave(
                start, train: trainSet, dev: devSet, config: c, maxLength: maxLength, out: out, saveSteps: saveSteps,
                replacing: overwriteOutputDir, inputs: [model].compactMap { $0 },
                progress: { step, total in
                    bar = bar ?? ProgressBar("finetune", total: total)
                    bar?.update(step)
                }, log: warn)
        }
        emit(
            FinetuneRecord.summary(
                history, out: out, parameters: start.model.parameterCount, seconds: Date().timeIntervalSince(started)
            ).pretty)
    }
}
