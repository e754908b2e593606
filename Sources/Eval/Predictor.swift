// Tokenize once, batch by length, run the model, put the logits back in input order.
import Checkpoint
import Failures
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

    /// The options as a user spelled them: a strategy name as HF's `truncation=` takes it; every value checked.
    public init(maxLength: Int, batchSize: Int, truncation name: String) throws {
        guard let t = TruncationStrategy(rawValue: name) else {
            throw SettingError(
                "truncation", "must be one of \(TruncationStrategy.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard maxLength >= 3 else { throw SettingError("maxLength", "must be at least 3") }
        guard batchSize >= 1 else { throw SettingError("batchSize", "must be at least 1") }
        self.init(maxLength: maxLength, batchSize: batchSize, truncation: t)
    }
}

/// One line of `hcore tokenize`: {"input_ids", "token_type_ids"} as the model sees them, and the token strings
/// when a tokenizer is given.
public func tokenizationLine(_ e: Encoding, tokens tok: BertTokenizer?) -> String {
    var fields: [(String, JSONValue)] = [
        ("input_ids", .array(e.inputIds.map { .int(Int($0)) })),
        ("token_type_ids", .array(e.tokenTypeIds.map { .int(Int($0)) })),
    ]
    if let tok { fields.append(("tokens", .array(e.inputIds.map { .string(tok.token($0)) }))) }
    return JSONValue.object(fields).compact
}

/// Every example tokenized, in order. Examples are independent and the tokenizer is immutable, so chunks
/// of them run on the pool (30,000 HANS pairs take 0.8 s on one core). An error is the first failing
/// example's: chunks are read back in order and each stops at its first failure.
public func encodeAll(
    _ examples: [Example], tokenizer: BertTokenizer, options: PredictionOptions,
    pool: ThreadPool = .shared
) throws -> [Encoding] {
    let chunk = 256
    let chunks = (examples.count + chunk - 1) / chunk
    var parts = [Result<[Encoding], any Error>?](repeating: nil, count: chunks)
    parts.withUnsafeMutableBufferPointer { slots in
        let base = UInt(bitPattern: slots.baseAddress)
        pool.parallelFor(chunks) { c in
            let slot = UnsafeMutablePointer<Result<[Encoding], any Error>?>(bitPattern: base)! + c
            slot.pointee = Result {
                try examples[(c * chunk)..<min(examples.count, (c + 1) * chunk)].map {
                    try tokenizer.encode(
                        $0.text, pair: $0.pair, maxLength: options.maxLength, truncation: options.truncation)
                }
            }
        }
    }
    var encodings: [Encoding] = []
    encodings.reserveCapacity(examples.count)
    for part in parts { encodings += try part!.get() }
    return encodings
}

/// Batches of example indices, each batch of similar lengths (sorted by length, stable), so that
/// packed batches carry similar work. Results never depend on this grouping beyond rounding.
public func lengthSortedBatches(_ encodings: [Encoding], batchSize: Int) -> [[Int]] {
    let order = encodings.indices.sorted { (encodings[$0].count, $0) < (encodings[$1].count, $1) }
    return stride(from: 0, to: order.count, by: max(1, batchSize)).map {
        Array(order[$0..<min(order.count, $0 + batchSize)])
    }
}

/// Logits [example][label] for every encoding, in input order.
public func predictLogits(
    model: BertModel, encodings: [Encoding], batchSize: Int, plan: ExecutionPlan? = nil,
    soft: (masks: MaskValues, ablation: Ablation)? = nil, pool: ThreadPool = .shared,
    progress: ((Int) -> Void)? = nil
) throws -> [[Float]] {
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

public func softmax(_ logits: [Float]) -> [Float] { softmaxDouble(logits).map(Float.init) }

public func argmax(_ v: [Float]) -> Int {
    var best = 0
    for i in v.indices where v[i] > v[best] { best = i }
    return best
}

/// What `hcore predict` prints per input: as JSON lines {"label", "probs", "logits"}, or for people the
/// label and then every class with its probability and logit.
public func predictionLines(_ logits: [[Float]], labels: [String], json: Bool) -> [String] {
    let width = labels.map(\.count).max() ?? 0
    return logits.flatMap { l -> [String] in
        let p = softmax(l)
        if json {
            return [
                JSONValue.object([("label", .string(labels[argmax(l)])), ("probs", .floats(p)), ("logits", .floats(l))])
                    .compact
            ]
        }
        return [labels[argmax(l)]]
            + labels.enumerated().map { i, name in
                "  " + name.padding(toLength: width, withPad: " ", startingAt: 0)
                    + String(format: "  p=%.4f  logit=%+.5f", p[i], l[i])
            }
    }
}
