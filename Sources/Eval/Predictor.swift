// Tokenize once, batch by length, run the model, put the logits back in input order.
import Foundation
import Kernels
import Model
import Tokenizer

public struct PredictionOptions: Sendable {
    public var maxLength = 128
    public var batchSize = 32
    public var truncation: TruncationStrategy = .longestFirst
    public init(maxLength: Int = 128, batchSize: Int = 32, truncation: TruncationStrategy = .longestFirst) {
        self.maxLength = maxLength
        self.batchSize = batchSize
        self.truncation = truncation
    }
}

public func encodeAll(_ examples: [Example], tokenizer: BertTokenizer, options: PredictionOptions) throws -> [Encoding] {
    try examples.map { try tokenizer.encode($0.text, pair: $0.pair, maxLength: options.maxLength, truncation: options.truncation) }
}

/// Batches of example indices, each batch of similar lengths (sorted by length, stable), so that
/// packed batches carry similar work. Results never depend on this grouping beyond rounding.
public func lengthSortedBatches(_ encodings: [Encoding], batchSize: Int) -> [[Int]] {
    let order = encodings.indices.sorted { (encodings[$0].count, $0) < (encodings[$1].count, $1) }
    return stride(from: 0, to: order.count, by: max(1, batchSize)).map { Array(order[$0..<min(order.count, $0 + batchSize)]) }
}

/// Logits [example][label] for every encoding, in input order.
public func predictLogits(model: BertModel, encodings: [Encoding], batchSize: Int, plan: ExecutionPlan? = nil,
                          soft: (masks: MaskValues, ablation: Ablation)? = nil, pool: ThreadPool = .shared,
                          progress: ((Int) -> Void)? = nil) throws -> [[Float]] {
    let C = model.config.numLabels
    var out = [[Float]](repeating: [], count: encodings.count)
    var done = 0
    for batch in lengthSortedBatches(encodings, batchSize: batchSize) {
        let logits = try model.forward(TokenBatch(batch.map { encodings[$0] }), plan: plan, soft: soft, pool: pool)
        for (r, i) in batch.enumerated() { out[i] = Array(logits[(r * C)..<((r + 1) * C)]) }
        done += batch.count
        progress?(done)
    }
    return out
}

public func softmax(_ logits: [Float]) -> [Float] {
    let m = logits.max() ?? 0
    let e = logits.map { Foundation.exp(Double($0 - m)) }
    let s = e.reduce(0, +)
    return e.map { Float($0 / s) }
}

public func argmax(_ v: [Float]) -> Int {
    var best = 0
    for i in v.indices where v[i] > v[best] { best = i }
    return best
}
