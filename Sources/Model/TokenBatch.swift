// A batch of tokenized sequences, concatenated without padding: activations are [tokens, features], so GEMMs
// never multiply padding and attention never sees a padded key.
import Checkpoint
import Tokenizer

/// Sequences of a batch, concatenated. Sequence s owns tokens offsets[s] ..< offsets[s+1].
public struct TokenBatch: Sendable {
    public var inputIds: [Int32] = []
    public var tokenTypeIds: [Int32] = []
    public var offsets: [Int] = [0]

    public init() {}

    public init(_ encodings: [Encoding]) {
        for e in encodings { append(e) }
    }

    public mutating func append(_ e: Encoding) {
        inputIds += e.inputIds
        tokenTypeIds += e.tokenTypeIds
        offsets.append(inputIds.count)
    }

    public var count: Int { offsets.count - 1 }
    public var tokenCount: Int { inputIds.count }
    public func length(_ s: Int) -> Int { offsets[s + 1] - offsets[s] }

    /// Rows whose embedding (token id, position in the sequence, token type) repeats an earlier row's:
    /// `unique` holds the first row of each distinct triple, in order, and `source[r]` the index in
    /// `unique` of row r's triple. Such rows enter layer 0 identical, so their Q/K/V are identical too.
    /// (In a length-sorted batch of 32 HANS pairs only ~25% of the rows are distinct: the same templates'
    /// words at the same positions.)
    public func distinctEmbeddingRows() -> (unique: [Int], source: [Int32]) {
        struct Key: Hashable { let id: Int32, position: Int32, type: Int32 }
        var first = [Key: Int32](minimumCapacity: tokenCount)
        var unique: [Int] = []
        var source = [Int32](repeating: 0, count: tokenCount)
        for s in 0..<count {
            for r in offsets[s]..<offsets[s + 1] {
                let key = Key(id: inputIds[r], position: Int32(r - offsets[s]), type: tokenTypeIds[r])
                if let u = first[key] {
                    source[r] = u
                } else {
                    source[r] = Int32(unique.count)
                    first[key] = Int32(unique.count)
                    unique.append(r)
                }
            }
        }
        return (unique, source)
    }
}

extension BertConfig {
    /// Checks a batch's lengths, ids and token types against a model of this configuration before anything runs.
    public func validate(_ batch: TokenBatch) throws {
        guard batch.count > 0 else { throw ModelError.badInput("the batch has no sequence") }
        for s in 0..<batch.count {
            let n = batch.length(s)
            if n < 1 { throw ModelError.badInput("sequence \(s) is empty") }
            if n > maxPositionEmbeddings {
                throw ModelError.badInput(
                    "sequence \(s) has \(n) tokens but the model has \(maxPositionEmbeddings) positions; truncate to at most that many"
                )
            }
        }
        for (i, id) in batch.inputIds.enumerated() where id < 0 || Int(id) >= vocabSize {
            throw ModelError.badInput("token \(i) has id \(id), outside the vocabulary of \(vocabSize)")
        }
        for (i, t) in batch.tokenTypeIds.enumerated() where t < 0 || Int(t) >= typeVocabSize {
            throw ModelError.badInput("token \(i) has token type \(t); the model has \(typeVocabSize)")
        }
    }
}
