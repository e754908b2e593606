// Full fine-tuning of a BERT classifier, as Hugging Face's Trainer does it by default:
//   AdamW (β 0.9/0.999, eps 1e-8), weight decay on every weight except biases and LayerNorm weights,
//   learning rate warmed up linearly over `warmupRatio` of the steps then decayed linearly to 0,
//   mini-batches shuffled every epoch, BERT's hidden dropout on.
// The result is written as a Hugging Face folder (config.json, model.safetensors, vocab.txt,
// tokenizer_config.json, special_tokens_map.json) that transformers and hcore both load.
import Checkpoint
import Foundation
import Kernels
import Model
import Tokenizer

public struct FinetuneConfig: Sendable {
    public var epochs = 3
    public var batchSize = 32
    public var learningRate = 5e-5
    public var weightDecay = 0.01
    public var warmupRatio = 0.1
    /// nil: the model config's hidden_dropout_prob.
    public var dropout: Float? = nil
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
        m = allocateFloats(count); v = allocateFloats(count)
        m.update(repeating: 0, count: count); v.update(repeating: 0, count: count)
        var d = [Bool](repeating: false, count: count)
        for t in model.tensors where weightDecay > 0 && !(t.name.hasSuffix(".bias") || t.name.contains("LayerNorm")) {
            for i in t.offset..<(t.offset + t.shape.reduce(1, *)) { d[i] = true }
        }
        decay = d
        optimizer = AdamW(weightDecay: weightDecay)
    }
    deinit { m.deallocate(); v.deallocate() }

    func step(_ p: UnsafeMutablePointer<Float>, _ g: UnsafePointer<Float>, lr: Double) {
        let (c1, c2) = optimizer.nextStep()
        let (lr, c1f, c2f) = (Float(lr), Float(c1), Float(c2))
        for i in 0..<count { optimizer.update(&p[i], m: &m[i], v: &v[i], grad: g[i], lr: lr, c1: c1f, c2: c2f, decay: decay[i]) }
    }
}

/// Accuracy of the current weights on encoded examples (dropout off).
public func accuracy(of model: TrainableBert, encodings: [Encoding], labels: [Int], batchSize: Int = 64, pool: ThreadPool = .shared) throws -> Double {
    guard !encodings.isEmpty else { return 0 }
    let m = try model.inferenceModel()
    let C = m.config.numLabels
    var correct = 0
    for start in stride(from: 0, to: encodings.count, by: batchSize) {
        let idx = start..<min(encodings.count, start + batchSize)
        let logits = try m.forward(TokenBatch(idx.map { encodings[$0] }), pool: pool)
        for (r, i) in idx.enumerated() {
            let row = logits[(r * C)..<((r + 1) * C)]
            if row.indices.max(by: { row[$0] < row[$1] })! - r * C == labels[i] { correct += 1 }
        }
    }
    return Double(correct) / Double(encodings.count)
}

/// Trains `model` in place. `onRecord` sees every step (and the dev accuracy when evaluated).
@discardableResult
public func finetune(_ model: TrainableBert, train: [Encoding], labels: [Int], dev: (encodings: [Encoding], labels: [Int])? = nil,
                     config c: FinetuneConfig, pool: ThreadPool = .shared,
                     onRecord: ((FinetuneRecord) -> Void)? = nil) throws -> [FinetuneRecord] {
    guard !train.isEmpty, train.count == labels.count else { throw ModelError.badInput("the training set is empty or its labels do not match") }
    guard c.epochs > 0, c.batchSize > 0, c.learningRate > 0 else { throw ModelError.badInput("epochs, batch size and learning rate must be positive") }
    let stepsPerEpoch = (train.count + c.batchSize - 1) / c.batchSize
    let total = stepsPerEpoch * c.epochs
    let warmup = Int((Double(total) * c.warmupRatio).rounded())
    let dropout = c.dropout ?? model.config.hiddenDropoutProb
    let opt = FlatAdamW(model: model, weightDecay: c.weightDecay)
    var rng = SplitMix64(seed: c.seed)
    var history: [FinetuneRecord] = []
    var order = Array(train.indices)
    var step = 0
    for epoch in 0..<c.epochs {
        rng.shuffle(&order)
        for start in stride(from: 0, to: order.count, by: c.batchSize) {
            let idx = order[start..<min(order.count, start + c.batchSize)]
            model.zeroGradients()
            let r = try model.trainingStep(TokenBatch(idx.map { train[$0] }), labels: idx.map { labels[$0] }, dropout: dropout, rng: &rng, pool: pool)
            let lr = c.learningRate * learningRateFactor(step: step, warmup: warmup, total: total)
            opt.step(model.params, model.grads, lr: lr)
            step += 1
            var record = FinetuneRecord(step: step, epoch: epoch, loss: r.loss, learningRate: lr, devAccuracy: nil)
            if let dev, (c.evalEvery > 0 && step % c.evalEvery == 0) || step == total {
                record.devAccuracy = try accuracy(of: model, encodings: dev.encodings, labels: dev.labels, pool: pool)
            }
            history.append(record)
            onRecord?(record)
        }
    }
    return history
}

extension TrainableBert {
    /// Writes a Hugging Face folder: config.json, model.safetensors, and the tokenizer as vocab.txt with
    /// tokenizer_config.json and special_tokens_map.json. Each file is written atomically.
    public func save(folder: String, vocabulary: [String], lowercase: Bool = true, metadata: [String: String] = [:]) throws {
        try makeFolder(folder)
        var meta = metadata
        meta["format"] = "pt"
        try safetensors(metadata: meta).write(to: folder + "/model.safetensors")
        func json(_ object: Any) throws -> [UInt8] {
            Array(try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])) + [10]
        }
        try writeAtomically(try json(config.jsonObject()), to: folder + "/config.json")
        try writeAtomically(Array((vocabulary.joined(separator: "\n") + "\n").utf8), to: folder + "/vocab.txt")
        try writeAtomically(try json([
            "do_lower_case": lowercase, "tokenizer_class": "BertTokenizer", "model_max_length": config.maxPositionEmbeddings,
            "unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]", "mask_token": "[MASK]",
            "tokenize_chinese_chars": true, "strip_accents": NSNull(),
        ] as [String: Any]), to: folder + "/tokenizer_config.json")
        try writeAtomically(try json(["unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]", "mask_token": "[MASK]"]),
                            to: folder + "/special_tokens_map.json")
    }
}
