// What replaces the senders' outputs in path patching, and the corrupted inputs it is computed from.
//
//   mean             each sender's mean activation (the ablation the paper prunes with)
//   paired           the sender's output on a partner pair of the other label: the same heuristic and token
//                    count when one exists, else any heuristic of that count (HANS's SO-Swap pairs have no
//                    entailed partner of their length in their own heuristic). Partners of the same heuristic
//                    share its full word overlap, so this does not remove the overlap feature
//   overlap-removed  the same premise with the hypothesis of another pair of the same subcase (same template,
//                    so the same syntax) none of whose content words occurs in the premise, of the same token
//                    count: length and syntax kept, the word overlap the core's heuristic reads removed
// Every draw is seeded; pairs without a partner are left out and counted.
import Checkpoint
import Eval
import Failures
import Foundation
import Kernels
import Model
import Tokenizer

public enum PatchCorruptionSource {
    case mean(MeanActivations)
    /// Each pair against a partner from `pool` of another label (`pairHANS`).
    case paired(pool: [Example], encodings: [Encoding], seed: UInt64)
    /// Each pair's hypothesis replaced by one from `pool` without overlap (`overlapRemoved`).
    case overlapRemoved(pool: [Example], tokenizer: BertTokenizer, options: PredictionOptions, seed: UInt64)
}

extension PatchCorruptionSource {
    /// The source a `kind` names: "mean" takes the senders' mean activations (`activations`, which it requires);
    /// "paired" and "overlap-removed" draw from `embedded` when given, else the pairs at `pool` (loaded and
    /// tokenized only then).
    public static func named(
        _ kind: String, activations: () throws -> MeanActivations?, pool: String, embedded: Dataset? = nil,
        tokenizer: BertTokenizer, options: PredictionOptions, seed: UInt64
    ) throws -> PatchCorruptionSource {
        func load() throws -> [Example] { try embedded?.examples ?? Dataset.loadNonEmpty(pool, limit: nil).examples }
        switch kind {
        case "paired":
            let examples = try load()
            return .paired(
                pool: examples, encodings: try encodeAll(examples, tokenizer: tokenizer, options: options), seed: seed)
        case "overlap-removed":
            let examples = try load()
            return .overlapRemoved(pool: examples, tokenizer: tokenizer, options: options, seed: seed)
        case "mean":
            guard let a = try activations() else {
                throw SettingError(
                    "activations", "is needed: mean corruption replaces the senders' outputs by their mean activations")
            }
            return .mean(a)
        default: throw SettingError("corrupt", "takes mean, paired or overlap-removed, not '\(kind)'")
        }
    }
}

/// Each clean example's corrupted partner in `pool`: another label, the same token count (so every position
/// has a counterpart), the same heuristic when one such exists, drawn with `seed`. Examples without a candidate
/// are left out (`unmatched`); `otherHeuristic` counts partners from another heuristic.
public func pairHANS(
    _ examples: [Example], encodings: [Encoding], pool: [Example], poolEncodings: [Encoding], seed: UInt64
) -> (pairs: [(clean: Int, corrupted: Int)], unmatched: Int, otherHeuristic: Int) {
    var rng = SplitMix64(seed: seed)
    var byLength: [Int: [Int]] = [:]
    for (i, enc) in poolEncodings.enumerated() { byLength[enc.inputIds.count, default: []].append(i) }
    var pairs: [(clean: Int, corrupted: Int)] = []
    var other = 0
    for (i, e) in examples.enumerated() {
        let sameLength = (byLength[encodings[i].inputIds.count] ?? []).filter { pool[$0].label != e.label }
        let sameHeuristic = sameLength.filter { pool[$0].heuristic == e.heuristic }
        let candidates = sameHeuristic.isEmpty ? sameLength : sameHeuristic
        guard !candidates.isEmpty else { continue }
        if sameHeuristic.isEmpty { other += 1 }
        pairs.append((i, candidates[Int(rng.next() % UInt64(candidates.count))]))
    }
    return (pairs, examples.count - pairs.count, other)
}

/// Words that carry no content for the overlap test.
let functionWords: Set<String> = [
    "the", "a", "an", "and", "or", "but", "if", "that", "which", "who", "whom", "whether", "was", "were", "is", "are",
    "be", "been", "by", "in", "on", "at", "of", "to", "with", "from", "near", "behind", "next", "beside", "since",
    "because", "although", "though", "unless", "while", "after", "before", "did", "not", "it", "as",
]

func contentWords(_ s: String) -> Set<String> {
    Set(s.lowercased().split { !$0.isLetter }.map(String.init).filter { !functionWords.contains($0) })
}

/// Each clean example with its hypothesis replaced by that of another pool pair of the same subcase whose
/// content words are all absent from the premise, of the same token count (drawn with `seed`). Returns the
/// corrupted encodings of the examples that found one, by clean index.
public func overlapRemoved(
    _ examples: [Example], encodings: [Encoding], pool: [Example], tokenizer: BertTokenizer,
    options: PredictionOptions, seed: UInt64
) throws -> (partners: [(clean: Int, corrupted: Encoding)], unmatched: Int) {
    var rng = SplitMix64(seed: seed)
    var bySubcase: [String: [Int]] = [:]
    for (i, e) in pool.enumerated() where e.pair != nil { bySubcase[e.subcase ?? "", default: []].append(i) }
    var out: [(clean: Int, corrupted: Encoding)] = []
    for (i, e) in examples.enumerated() {
        let premise = contentWords(e.text)
        var candidates = (bySubcase[e.subcase ?? ""] ?? []).filter {
            pool[$0].pair != e.pair && contentWords(pool[$0].pair!).isDisjoint(with: premise)
        }
        rng.shuffle(&candidates)
        // The first candidate (in the seeded order) whose pair with this premise has the clean token count.
        for c in candidates.prefix(64) {
            let swapped = Example(
                text: e.text, pair: pool[c].pair, label: e.label, heuristic: e.heuristic, subcase: e.subcase)
            let enc = try encodeAll([swapped], tokenizer: tokenizer, options: options)[0]
            if enc.inputIds.count == encodings[i].inputIds.count {
                out.append((i, enc))
                break
            }
        }
    }
    return (out, examples.count - out.count)
}

/// The kept clean examples (indices into `examples`), their batches, the corruption over those batches, and
/// the corruption in words.
func prepareCorruption(_ source: PatchCorruptionSource, examples: [Example], encodings: [Encoding]) throws -> (
    kept: [Int], batches: [TokenBatch], corruption: PatchCorruption, description: String
) {
    func batched(_ xs: [Encoding]) -> [TokenBatch] {
        stride(from: 0, to: xs.count, by: 32).map { TokenBatch(Array(xs[$0..<min(xs.count, $0 + 32)])) }
    }
    switch source {
    case .mean(let activations):
        return (
            Array(encodings.indices), batched(encodings), .mean(activations),
            "each sender's mean activation (the paper's ablation)"
        )
    case .paired(let pool, let poolEncodings, let seed):
        let (pairs, unmatched, other) = pairHANS(
            examples, encodings: encodings, pool: pool, poolEncodings: poolEncodings, seed: seed)
        guard !pairs.isEmpty else {
            throw ModelError.badInput("no pair has a partner of another label and the same length to corrupt with")
        }
        let kept = pairs.map(\.clean)
        return (
            kept, batched(kept.map { encodings[$0] }), .paired(batched(pairs.map { poolEncodings[$0.corrupted] })),
            "a paired input of the other label (same length; same heuristic, else another for \(other)), seed \(seed): \(pairs.count) pairs, \(unmatched) without a partner left out"
        )
    case .overlapRemoved(let pool, let tokenizer, let options, let seed):
        let (partners, unmatched) = try overlapRemoved(
            examples, encodings: encodings, pool: pool, tokenizer: tokenizer, options: options, seed: seed)
        guard !partners.isEmpty else {
            throw ModelError.badInput(
                "no pair has a hypothesis of its subcase without overlap and of the same length to corrupt with")
        }
        let kept = partners.map(\.clean)
        return (
            kept, batched(kept.map { encodings[$0] }), .paired(batched(partners.map(\.corrupted))),
            "the same premise with a hypothesis of the same subcase sharing none of its content words (same length), seed \(seed): \(partners.count) pairs, \(unmatched) without one left out"
        )
    }
}
