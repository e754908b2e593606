// What each head attends to on premise–hypothesis pairs, in four numbers (`hcore circuits attention --summary`),
// each a mean over the pairs' query tokens (special tokens excluded as queries):
//   same word    weight a token puts on the tokens of the other sentence with the same word piece (the
//                overlap the lexical-overlap heuristic reads), over the tokens that have such a match; beside it
//                what uniform attention would put there (matches / length)
//   [SEP]        weight on the two [SEP] tokens
//   [CLS]        weight on [CLS]
import Foundation
import Kernels
import Model
import Tokenizer

/// The positions of a pair's parts: [CLS] at 0, the premise, its [SEP], the hypothesis, the final [SEP].
public struct PairSegments: Sendable {
    public var premise: [Int], hypothesis: [Int], separators: [Int]
    public let cls = 0

    /// From token types (0 premise, 1 hypothesis); nil for a sequence without a second segment.
    public init?(_ e: Encoding) {
        let T = e.tokenTypeIds.count
        guard let firstHyp = e.tokenTypeIds.firstIndex(of: 1), firstHyp >= 2, T >= firstHyp + 2 else { return nil }
        premise = Array(1..<(firstHyp - 1))
        hypothesis = Array(firstHyp..<(T - 1))
        separators = [firstHyp - 1, T - 1]
    }
}

public struct HeadAttentionSummary: Sendable {
    public var layer: Int, head: Int
    public var sameWord: Double, sameWordUniform: Double
    public var separators: Double, cls: Double
}

/// The four numbers of the file comment for every head, over `encodings` (pairs without two segments skipped).
public func attentionSummary(model: BertModel, encodings: [Encoding], batchSize: Int = 32) throws
    -> [HeadAttentionSummary]
{
    let (L, H) = (model.layerCount, model.headCount)
    // Per head: sums and counts of the four numbers.
    var same = [Double](repeating: 0, count: L * H)
    var uniform = 0.0
    var sameCount = 0
    var sep = [Double](repeating: 0, count: L * H)
    var cls = [Double](repeating: 0, count: L * H)
    var queries = 0
    let pairs = encodings.filter { PairSegments($0) != nil }
    for start in stride(from: 0, to: pairs.count, by: batchSize) {
        let chunk = Array(pairs[start..<min(pairs.count, start + batchSize)])
        let batch = TokenBatch(chunk)
        let patterns = try model.attentionPatterns(batch)
        let base = attentionProbOffsets(offsets: batch.offsets, heads: H)
        for (s, e) in chunk.enumerated() {
            let seg = PairSegments(e)!
            let T = e.inputIds.count
            let matches = (seg.premise + seg.hypothesis).map { i -> (Int, [Int]) in
                let other = seg.premise.contains(i) ? seg.hypothesis : seg.premise
                return (i, other.filter { e.inputIds[$0] == e.inputIds[i] })
            }
            for (_, m) in matches where !m.isEmpty {
                uniform += Double(m.count) / Double(T)
                sameCount += 1
            }
            queries += matches.count
            for l in 0..<L {
                patterns[l].withUnsafeBufferPointer { probs in
                    for h in 0..<H {
                        let u = l * H + h
                        for (i, m) in matches {
                            let row = base[s] + (h * T + i) * T
                            for j in m { same[u] += Double(probs[row + j]) }
                            sep[u] += Double(probs[row + seg.separators[0]] + probs[row + seg.separators[1]])
                            cls[u] += Double(probs[row])
                        }
                    }
                }
            }
        }
    }
    let n = Double(max(1, queries))
    let ns = Double(max(1, sameCount))
    return (0..<(L * H)).map { u in
        HeadAttentionSummary(
            layer: u / H, head: u % H, sameWord: same[u] / ns, sameWordUniform: uniform / ns, separators: sep[u] / n,
            cls: cls[u] / n)
    }
}
