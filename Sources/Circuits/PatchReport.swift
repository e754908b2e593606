// What `hcore circuits patch` reports: for every receiver the mean change of the entailment log-odds when the
// senders' effect flows only through it — overall and on each of the paper's four plotted HANS subcases —
// beside the same measure for matched random sender sets, and the receiver's percentile among them.
import Checkpoint
import Eval
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
    public var freeze: Bool, seed: UInt64

    /// Share of controls whose |mean Δ| is below the senders' (overall), per receiver.
    public func percentile(_ r: Int) -> Double? {
        guard !controls.isEmpty else { return nil }
        let x = abs(effects.mean(r))
        return Double(controls.filter { abs($0.mean(r)) < x }.count) / Double(controls.count)
    }

    public var json: JSONValue {
        .object([
            ("senders", .array(senders.map { .string(PrunableUnit.head($0.layer, $0.head).description) })),
            ("corruption", .string("mean activation")), ("freeze_other_heads", .bool(freeze)), ("layernorm", .string("recomputed")),
            ("measure", .string("mean Δ of z_entailment − logsumexp(other logits), patched − clean")),
            ("controls", .int(controls.count)), ("seed", .int(Int(seed))),
            ("groups", .object(groups.map { ($0.name, .int($0.examples.count)) })),
            ("receivers", .array(effects.receivers.indices.map { r in
                .object([("receiver", .string(effects.receivers[r].description)),
                         ("delta", .object(groups.map { g in (g.name, .float(effects.mean(r, examples: g.examples))) })),
                         ("control_mean_abs_delta", controls.isEmpty ? .null : .float(controls.map { abs($0.mean(r)) }.reduce(0, +) / Double(controls.count))),
                         ("percentile", percentile(r).map { .float($0) } ?? .null)])
            })),
        ])
    }

    /// The receivers with the largest |Δ| overall, one line each.
    public func table(top: Int = 20) -> [String] {
        let order = effects.receivers.indices.sorted { abs(effects.mean($0)) > abs(effects.mean($1)) }.prefix(top)
        var lines = ["senders (mean-ablated): " + senders.map { PrunableUnit.head($0.layer, $0.head).description }.joined(separator: " ")
                     + " · \(controls.count) matched random sender sets · other heads \(freeze ? "frozen at their clean context" : "recomputed")",
                     "receiver        " + groups.map { $0.name.padding(toLength: 24, withPad: " ", startingAt: 0) }.joined() + "percentile"]
        for r in order {
            let cells = groups.map { String(format: "%+.4f", effects.mean(r, examples: $0.examples)).padding(toLength: 24, withPad: " ", startingAt: 0) }
            lines.append(effects.receivers[r].description.padding(toLength: 16, withPad: " ", startingAt: 0) + cells.joined()
                         + (percentile(r).map { String(format: "%.2f", $0) } ?? "—"))
        }
        return lines
    }
}

/// Path patching of `senders` on HANS `examples` (their subcases group the result), with `controls` matched
/// random sender sets. Batches of 32 in file order.
public func patchReport(model: BertModel, encodings: [Encoding], subcases: [String?], senders: [(layer: Int, head: Int)],
                        activations: MeanActivations, entailment: Int, controls: Int, seed: UInt64, freeze: Bool = true,
                        progress: ((String) -> Void)? = nil) throws -> PatchReport {
    guard !senders.isEmpty else { throw ModelError.badInput("no sender heads to patch") }
    let batches = stride(from: 0, to: encodings.count, by: 32).map { TokenBatch(Array(encodings[$0..<min(encodings.count, $0 + 32)])) }
    let receivers = patchReceivers(senders: senders, layers: model.layerCount, heads: model.headCount)
    progress?("senders: \(receivers.count) receivers on \(encodings.count) pairs")
    let effects = try pathPatch(model: model, batches: batches, senders: senders, receivers: receivers, activations: activations, entailment: entailment, freeze: freeze)
    var controlEffects: [PatchEffects] = []
    for (k, random) in matchedRandomSenders(senders, heads: model.headCount, count: controls, seed: seed).enumerated() {
        progress?("control \(k + 1)/\(controls)")
        controlEffects.append(try pathPatch(model: model, batches: batches, senders: random, receivers: receivers, activations: activations, entailment: entailment, freeze: freeze))
    }
    var groups: [(name: String, examples: [Int])] = [("all", Array(encodings.indices))]
    for s in PatchReport.plottedSubcases {
        let idx = subcases.indices.filter { subcases[$0] == s }
        if !idx.isEmpty { groups.append((s, idx)) }
    }
    return PatchReport(senders: senders, effects: effects, controls: controlEffects, groups: groups, freeze: freeze, seed: seed)
}
