// What `hcore circuits patch` reports: for every receiver the mean change of the entailment log-odds when the
// senders' effect flows only through it — overall and on each of the paper's four plotted HANS subcases —
// beside the same measure for matched random sender sets, and the receiver's percentile among them.
import Checkpoint
import Eval
import Failures
import Foundation
import Kernels
import Model
import Tokenizer

public struct PatchReport: Sendable {
    /// The HANS subcases the paper's MNLI figures plot.
    public static let plottedSubcases = plottedHANSSubcases

    public var senders: [(layer: Int, head: Int)]
    public var effects: PatchEffects
    public var controls: [PatchEffects]
    /// Example indices per group ("all" first, then each plotted subcase present).
    public var groups: [(name: String, examples: [Int])]
    public var freeze: Bool, frozenLayerNorm: Bool, seed: UInt64
    /// How the senders were corrupted, in words (the JSON's `corruption`).
    public var corruption: String

    /// Share of controls whose |mean Δ| is below the senders' (overall), per receiver.
    public func percentile(_ r: Int) -> Double? {
        guard !controls.isEmpty else { return nil }
        let x = abs(effects.mean(r))
        return Double(controls.filter { abs($0.mean(r)) < x }.count) / Double(controls.count)
    }

    public var json: JSONValue {
        .object([
            ("senders", .array(senders.map { .string(PrunableUnit.head($0.layer, $0.head).description) })),
            ("corruption", .string(corruption)), ("freeze_other_heads", .bool(freeze)),
            ("layernorm", .string(frozenLayerNorm ? "scales frozen at the clean run's" : "recomputed")),
            ("measure", .string("mean Δ of z_entailment − logsumexp(other logits), patched − clean")),
            ("controls", .int(controls.count)), ("seed", .int(Int(seed))),
            ("groups", .object(groups.map { ($0.name, .int($0.examples.count)) })),
            (
                "receivers",
                .array(
                    effects.receivers.indices.map { r in
                        .object([
                            ("receiver", .string(effects.receivers[r].description)),
                            (
                                "delta",
                                .object(groups.map { g in (g.name, .float(effects.mean(r, examples: g.examples))) })
                            ),
                            (
                                "control_mean_abs_delta",
                                controls.isEmpty
                                    ? .null
                                    : .float(controls.map { abs($0.mean(r)) }.reduce(0, +) / Double(controls.count))
                            ),
                            ("percentile", percentile(r).map { .float($0) } ?? .null),
                        ])
                    })
            ),
        ])
    }

    /// The receivers with the largest |Δ| overall, one line each.
    public func table(top: Int = 20) -> [String] {
        let order = effects.receivers.indices.sorted { abs(effects.mean($0)) > abs(effects.mean($1)) }.prefix(top)
        var lines = [
            "senders: " + senders.map { PrunableUnit.head($0.layer, $0.head).description }.joined(separator: " ")
                + " · corrupted by \(corruption) · \(controls.count) matched random sender sets · other heads \(freeze ? "frozen at their clean context" : "recomputed")"
                + " · LayerNorm \(frozenLayerNorm ? "scales frozen" : "recomputed")",
            "receiver        " + groups.map { $0.name.padding(toLength: 24, withPad: " ", startingAt: 0) }.joined()
                + "percentile",
        ]
        for r in order {
            let cells = groups.map {
                String(format: "%+.4f", effects.mean(r, examples: $0.examples)).padding(
                    toLength: 24, withPad: " ", startingAt: 0)
            }
            lines.append(
                effects.receivers[r].description.padding(toLength: 16, withPad: " ", startingAt: 0) + cells.joined()
                    + (percentile(r).map { String(format: "%.2f", $0) } ?? "—"))
        }
        return lines
    }
}

/// What corrupts the senders in `patchReport`.
public enum PatchCorruptionSource {
    case mean(MeanActivations)
    /// Each pair against a partner from `pool` of another label (`pairHANS`, seeded).
    case paired(pool: [Example], encodings: [Encoding], seed: UInt64)
}

extension PatchCorruptionSource {
    /// The source `--corrupt KIND` names: "mean" takes the senders' mean activations (`activations`, which it
    /// requires); "paired" draws partners from the pairs at `pool` (loaded and tokenized only then).
    public static func named(
        _ kind: String, activations: () throws -> MeanActivations?, pool: String,
        tokenizer: BertTokenizer, options: PredictionOptions, seed: UInt64
    ) throws -> PatchCorruptionSource {
        switch kind {
        case "paired":
            let examples = try Dataset.loadNonEmpty(pool, limit: nil).examples
            return .paired(
                pool: examples, encodings: try encodeAll(examples, tokenizer: tokenizer, options: options), seed: seed)
        case "mean":
            guard let a = try activations() else {
                throw SettingError(
                    "activations", "is needed: mean corruption replaces the senders' outputs by their mean activations")
            }
            return .mean(a)
        default: throw SettingError("corrupt", "takes mean or paired, not '\(kind)'")
        }
    }
}

/// Each clean example's corrupted partner in `pool`: a pair of another label, of the same heuristic when both
/// name one (HANS), and of the same token count (so every position has a counterpart), drawn with `seed`
/// among the candidates. Examples without a candidate are left out (`unmatched`).
public func pairHANS(
    _ examples: [Example], encodings: [Encoding], pool: [Example], poolEncodings: [Encoding], seed: UInt64
)
    -> (pairs: [(clean: Int, corrupted: Int)], unmatched: Int)
{
    var rng = SplitMix64(seed: seed)
    func key(_ e: Example, _ enc: Encoding) -> String { "\(e.heuristic ?? "")|\(enc.inputIds.count)" }
    var byKey: [String: [Int]] = [:]
    for (i, e) in pool.enumerated() { byKey[key(e, poolEncodings[i]), default: []].append(i) }
    var pairs: [(clean: Int, corrupted: Int)] = []
    for (i, e) in examples.enumerated() {
        let candidates = (byKey[key(e, encodings[i])] ?? []).filter { pool[$0].label != e.label }
        guard !candidates.isEmpty else { continue }
        pairs.append((i, candidates[Int(rng.next() % UInt64(candidates.count))]))
    }
    return (pairs, examples.count - pairs.count)
}

/// Path patching of `senders` on HANS `examples` (their subcases group the result), with `controls` matched
/// random sender sets. Batches of 32 in file order.
public func patchReport(
    model: BertModel, examples: [Example], encodings: [Encoding], senders: [(layer: Int, head: Int)],
    corruption source: PatchCorruptionSource, controls: Int, seed: UInt64, freeze: Bool = true,
    frozenLayerNorm: Bool = false,
    progress: ((String) -> Void)? = nil
) throws -> PatchReport {
    guard !senders.isEmpty else { throw ModelError.badInput("no sender heads to patch") }
    guard let entailment = model.config.labels.map({ $0.lowercased() }).firstIndex(of: "entailment") else {
        throw ModelError.mismatch(
            "path patching measures the entailment log-odds: the model needs an 'entailment' label (it has \(model.config.labels))"
        )
    }
    var kept = Array(encodings.indices)
    var partners: [Int] = []
    var description = "mean activation"
    if case .paired(let pool, let poolEncodings, let pairSeed) = source {
        let (pairs, unmatched) = pairHANS(
            examples, encodings: encodings, pool: pool, poolEncodings: poolEncodings, seed: pairSeed)
        guard !pairs.isEmpty else {
            throw ModelError.badInput("no pair has a partner of another label and the same length to corrupt with")
        }
        (kept, partners) = (pairs.map(\.clean), pairs.map(\.corrupted))
        description =
            "a paired input of the other label (same heuristic and length, seed \(pairSeed)): \(pairs.count) pairs, \(unmatched) without a partner left out"
    }
    func batched(_ idx: [Int], _ from: [Encoding]) -> [TokenBatch] {
        stride(from: 0, to: idx.count, by: 32).map { TokenBatch(idx[$0..<min(idx.count, $0 + 32)].map { from[$0] }) }
    }
    let batches = batched(kept, encodings)
    let corruption: PatchCorruption
    switch source {
    case .mean(let activations): corruption = .mean(activations)
    case .paired(_, let poolEncodings, _): corruption = .paired(batched(partners, poolEncodings))
    }
    let receivers = patchReceivers(senders: senders, layers: model.layerCount, heads: model.headCount)
    progress?("senders: \(receivers.count) receivers on \(kept.count) pairs")
    func patch(_ s: [(layer: Int, head: Int)]) throws -> PatchEffects {
        try pathPatch(
            model: model, batches: batches, senders: s, receivers: receivers, corruption: corruption,
            entailment: entailment, freeze: freeze, frozenLayerNorm: frozenLayerNorm)
    }
    let effects = try patch(senders)
    var controlEffects: [PatchEffects] = []
    for (k, random) in matchedRandomSenders(senders, heads: model.headCount, count: controls, seed: seed).enumerated() {
        progress?("control \(k + 1)/\(controls)")
        controlEffects.append(try patch(random))
    }
    var groups: [(name: String, examples: [Int])] = [("all", Array(kept.indices))]
    for s in PatchReport.plottedSubcases {
        let idx = kept.indices.filter { examples[kept[$0]].subcase == s }
        if !idx.isEmpty { groups.append((s, idx)) }
    }
    return PatchReport(
        senders: senders, effects: effects, controls: controlEffects, groups: groups, freeze: freeze,
        frozenLayerNorm: frozenLayerNorm,
        seed: seed, corruption: description)
}
