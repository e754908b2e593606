// Full fine-tuning of a BERT classifier, as Hugging Face's Trainer does it for the reference's run_glue.py:
//   AdamW (β 0.9/0.999, eps 1e-8), weight decay (run_glue's default 0) on every weight except biases and
//   LayerNorm weights, learning rate warmed up linearly over `warmupRatio` of the steps (default 0) then
//   decayed linearly to 0, mini-batches shuffled every epoch, gradients accumulated over
//   `gradientAccumulationSteps` batches (each scaled by 1/accumulation) and clipped to one global L2 norm of
//   `maxGradNorm` (1.0) before each optimizer step, BERT's dropout on (hidden and attention probabilities).
// The result is written as a Hugging Face folder (config.json, model.safetensors, vocab.txt,
// tokenizer_config.json, special_tokens_map.json) that transformers and hcore both load.
import Checkpoint
import Eval
import Failures
import Foundation
import Kernels
import Model
import Optimization
import Tokenizer

public struct FinetuneConfig: Sendable {
    /// Every setting checked, the first out of range named as HF's TrainingArguments names it.
    public func validate(saveSteps: Int) throws {
        func check(_ ok: Bool, _ setting: String, _ problem: String) throws {
            if !ok { throw SettingError(setting, problem) }
        }
        try check(epochs >= 1, "numTrainEpochs", "must be ≥ 1")
        try check((maxSteps ?? 1) >= 1, "maxSteps", "must be ≥ 1")
        try check(batchSize >= 1, "perDeviceTrainBatchSize", "must be ≥ 1")
        try check(gradientAccumulationSteps >= 1, "gradientAccumulationSteps", "must be ≥ 1")
        try check(saveSteps >= 0, "saveSteps", "must be ≥ 0")
        try check(learningRate > 0 && learningRate.isFinite, "learningRate", "must be a positive number")
        try check(maxGradNorm >= 0 && maxGradNorm.isFinite, "maxGradNorm", "must be a number ≥ 0")
        try check((0..<1).contains(warmupRatio), "warmupRatio", "must lie in [0, 1)")
        try check(dropout.map { (0..<1).contains($0) } ?? true, "dropout", "must lie in [0, 1)")
        try check(attentionDropout.map { (0..<1).contains($0) } ?? true, "attentionDropout", "must lie in [0, 1)")
    }

    public var epochs = 3
    /// When set, the run stops after this many optimizer steps (epochs repeat as needed), as --max_steps.
    public var maxSteps: Int? = nil
    public var batchSize = 32
    public var gradientAccumulationSteps = 1
    public var learningRate = 5e-5
    public var weightDecay = 0.0
    public var warmupRatio = 0.0
    /// One global L2 norm over every parameter's gradient, clipped before each step (0: off).
    public var maxGradNorm = 1.0
    /// nil: the model config's hidden_dropout_prob.
    public var dropout: Float? = nil
    /// Dropout on the attention probabilities; nil: the model config's attention_probs_dropout_prob.
    public var attentionDropout: Float? = nil
    public var seed: UInt64 = 42
    /// Evaluate on the dev set every this many steps (and at the end); 0: only at the end.
    public var evalEvery = 0
    public init() {}
}

public struct FinetuneRecord: Sendable {
    public var step: Int, epoch: Int, loss: Double, learningRate: Double
    public var devAccuracy: Double?
}

/// AdamW over the flat parameter buffer (fp32 moments); weight decay only where `decay` says.
final class FlatAdamW {
    let m: UnsafeMutablePointer<Float>, v: UnsafeMutablePointer<Float>, decay: [Bool], count: Int
    var optimizer: AdamW
    init(model: TrainableBert, weightDecay: Double) {
        count = model.parameterCount
        m = allocateFloats(count)
        v = allocateFloats(count)
        m.update(repeating: 0, count: count)
        v.update(repeating: 0, count: count)
        var d = [Bool](repeating: false, count: count)
        for t in model.tensors where weightDecay > 0 && !(t.name.hasSuffix(".bias") || t.name.contains("LayerNorm")) {
            for i in t.offset..<(t.offset + t.shape.reduce(1, *)) { d[i] = true }
        }
        decay = d
        optimizer = AdamW(weightDecay: weightDecay)
    }
    deinit {
        m.deallocate()
        v.deallocate()
    }

    func step(_ p: UnsafeMutablePointer<Float>, _ g: UnsafePointer<Float>, lr: Double) {
        let (c1, c2) = optimizer.nextStep()
        let (lr, c1f, c2f) = (Float(lr), Float(c1), Float(c2))
        for i in 0..<count {
            optimizer.update(&p[i], m: &m[i], v: &v[i], grad: g[i], lr: lr, c1: c1f, c2: c2f, decay: decay[i])
        }
    }
}

/// Accuracy of the current weights on encoded examples (dropout off).
public func accuracy(
    of model: TrainableBert, encodings: [Encoding], labels: [Int], batchSize: Int = 64, pool: ThreadPool = .shared
) throws -> Double {
    guard !encodings.isEmpty else { return 0 }
    let m = try model.inferenceModel()
    let C = m.config.numLabels
    var correct = 0
    for start in stride(from: 0, to: encodings.count, by: batchSize) {
        let idx = start..<min(encodings.count, start + batchSize)
        let logits = try m.forward(TokenBatch(idx.map { encodings[$0] }), pool: pool)
        for (r, i) in idx.enumerated() {
            if argmax(Array(logits[(r * C)..<((r + 1) * C)])) == labels[i] { correct += 1 }
        }
    }
    return Double(correct) / Double(encodings.count)
}

extension FinetuneConfig {
    /// Optimizer steps of one pass over `examples`: batches, grouped by the accumulation (a last short group
    /// still steps, as the Trainer does at an epoch's end).
    public func stepsPerEpoch(examples n: Int) -> Int {
        ((n + batchSize - 1) / batchSize + gradientAccumulationSteps - 1) / gradientAccumulationSteps
    }
    /// The run's optimizer steps: --max-steps, else epochs × steps per epoch.
    public func totalSteps(examples n: Int) -> Int { maxSteps ?? epochs * stepsPerEpoch(examples: n) }
}

/// Trains `model` in place. `onRecord` sees every optimizer step (and the dev accuracy when evaluated);
/// `checkpoint` is called after every `saveEvery` steps with the step (0: never).
@discardableResult
public func finetune(
    _ model: TrainableBert, train: [Encoding], labels: [Int], dev: (encodings: [Encoding], labels: [Int])? = nil,
    config c: FinetuneConfig, saveEvery: Int = 0, checkpoint: ((Int) throws -> Void)? = nil, pool: ThreadPool = .shared,
    onRecord: ((FinetuneRecord) -> Void)? = nil
) throws -> [FinetuneRecord] {
    guard !train.isEmpty, train.count == labels.count else {
        throw ModelError.badInput("the training set is empty or its labels do not match")
    }
    guard c.epochs > 0, c.batchSize > 0, c.learningRate > 0, c.gradientAccumulationSteps > 0, (c.maxSteps ?? 1) > 0
    else {
        throw ModelError.badInput("epochs, steps, batch size, accumulation and learning rate must be positive")
    }
    guard c.maxGradNorm >= 0, c.maxGradNorm.isFinite else { throw ModelError.badInput("max_grad_norm must be ≥ 0") }
    let total = c.totalSteps(examples: train.count)
    let warmup = Int((Double(total) * c.warmupRatio).rounded())
    let dropout = c.dropout ?? model.config.hiddenDropoutProb
    let attentionDropout = c.attentionDropout ?? model.config.attentionProbsDropoutProb
    let opt = FlatAdamW(model: model, weightDecay: c.weightDecay)
    var rng = SplitMix64(seed: c.seed)
    // Dropout seeds come from their own stream, so the data order does not depend on how batches are accumulated.
    var dropoutSeeds = SplitMix64(seed: c.seed &+ SplitMix64.gamma)
    var history: [FinetuneRecord] = []
    var order = Array(train.indices)
    var step = 0
    var epoch = 0
    let batchStarts = Array(stride(from: 0, to: order.count, by: c.batchSize))
    while step < total {
        rng.shuffle(&order)
        // Each optimizer step takes the next `gradientAccumulationSteps` batches of this pass.
        for group in stride(from: 0, to: batchStarts.count, by: c.gradientAccumulationSteps) where step < total {
            model.zeroGradients()
            var loss = 0.0
            let micro = batchStarts[group..<min(batchStarts.count, group + c.gradientAccumulationSteps)]
            for start in micro {
                let idx = order[start..<min(order.count, start + c.batchSize)]
                let step = StepDropout(hidden: dropout, attention: attentionDropout, seed: dropoutSeeds.next())
                loss +=
                    try model.trainingStep(
                        TokenBatch(idx.map { train[$0] }), labels: idx.map { labels[$0] }, dropout: step,
                        gradientScale: 1 / Float(c.gradientAccumulationSteps), pool: pool
                    ).loss / Double(micro.count)
            }
            clipGlobalNorm(
                [UnsafeMutableBufferPointer(start: model.grads, count: model.parameterCount)], maxNorm: c.maxGradNorm)
            let lr = c.learningRate * learningRateFactor(step: step, warmup: warmup, total: total)
            opt.step(model.params, model.grads, lr: lr)
            step += 1
            var record = FinetuneRecord(step: step, epoch: epoch, loss: loss, learningRate: lr, devAccuracy: nil)
            if let dev, (c.evalEvery > 0 && step % c.evalEvery == 0) || step == total {
                record.devAccuracy = try accuracy(of: model, encodings: dev.encodings, labels: dev.labels, pool: pool)
            }
            history.append(record)
            onRecord?(record)
            if let checkpoint, saveEvery > 0, step % saveEvery == 0 { try checkpoint(step) }
        }
        epoch += 1
    }
    return history
}

extension TrainableBert {
    /// Writes a Hugging Face folder: config.json, model.safetensors, and the tokenizer as vocab.txt with
    /// tokenizer_config.json and special_tokens_map.json. Each file is written atomically.
    public func save(folder: String, vocabulary: [String], lowercase: Bool = true, metadata: [String: String] = [:])
        throws
    {
        try makeFolder(folder)
        var meta = metadata
        meta["format"] = "pt"
        try safetensors(metadata: meta).write(to: folder + "/model.safetensors")
        func json(_ object: Any) throws -> [UInt8] {
            Array(try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])) + [10]
        }
        try writeAtomically(try json(config.jsonObject()), to: folder + "/config.json")
        try writeAtomically(Array((vocabulary.joined(separator: "\n") + "\n").utf8), to: folder + "/vocab.txt")
        try writeAtomically(
            try json(
                [
                    "do_lower_case": lowercase, "tokenizer_class": "BertTokenizer",
                    "model_max_length": config.maxPositionEmbeddings,
                    "unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]",
                    "mask_token": "[MASK]",
                    "tokenize_chinese_chars": true, "strip_accents": NSNull(),
                ] as [String: Any]), to: folder + "/tokenizer_config.json")
        try writeAtomically(
            try json([
                "unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]",
                "mask_token": "[MASK]",
            ]),
            to: folder + "/special_tokens_map.json")
    }
}
