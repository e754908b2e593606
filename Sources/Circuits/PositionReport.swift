// What `hcore circuits positions` prints: per unit, its effect on each part of the pair and its direct logit
// attribution, each a mean over the pairs with its standard error (DirectEffects.swift).
import Checkpoint
import Eval
import Failures
import Foundation
import Kernels
import Model
import Tokenizer

public struct PositionReport: Sendable {
    public var units: [String]
    /// [unit][part] → (mean, standard error) of Δ.
    public var byPart: [[PairPart: (mean: Double, se: Double)]]
    /// [unit] → (mean, standard error) of the direct logit attribution; nil without mean activations.
    public var direct: [(mean: Double, se: Double)]?
    public var pairs: Int
    public var corruption: String
}

func meanAndError(_ xs: [Double]) -> (mean: Double, se: Double) {
    let n = Double(xs.count)
    guard xs.count > 1 else { return (xs.first ?? .nan, .nan) }
    let m = xs.reduce(0, +) / n
    return (m, (xs.reduce(0) { $0 + ($1 - m) * ($1 - m) } / (n - 1) / n).squareRoot())
}

/// Position patching and direct logit attribution of `units` on `examples` (pairs without a second segment
/// are skipped by position patching).
public func positionEffects(
    model: BertModel, examples: [Example], encodings: [Encoding], units: PatchSenders,
    corruption source: PatchCorruptionSource, activations: MeanActivations?
) throws -> PositionReport {
    guard !units.isEmpty else { throw ModelError.badInput("no units to patch") }
    let entailment = try entailmentIndex(model)
    let (kept, batches, corruption, description) = try prepareCorruption(
        source, examples: examples, encodings: encodings)
    let keptEncodings = kept.map { encodings[$0] }
    let grouped = stride(from: 0, to: keptEncodings.count, by: 32).map {
        Array(keptEncodings[$0..<min(keptEncodings.count, $0 + 32)])
    }
    let effects = try positionPatching(
        model: model, batches: batches, encodings: grouped, units: units, corruption: corruption,
        entailment: entailment)
    var direct: [(mean: Double, se: Double)]? = nil
    if let activations {
        let all = try directLogitAttribution(
            model: model, batches: batches, activations: activations, entailment: entailment)
        let (L, H) = (model.layerCount, model.headCount)
        direct =
            units.heads.map { meanAndError(all[$0.layer * H + $0.head]) }
            + units.mlps.map { meanAndError(all[L * H + $0]) }
    }
    return PositionReport(
        units: effects.units, byPart: effects.deltas.map { $0.mapValues(meanAndError) }, direct: direct,
        pairs: kept.count, corruption: description)
}

extension PositionReport {
    public var json: JSONValue {
        func f(_ x: Double) -> JSONValue { x.isNaN ? .null : .float(x) }
        return .object([
            ("pairs", .int(pairs)), ("corruption", .string(corruption)),
            (
                "direct",
                .string(
                    "output at [CLS] minus its mean, through every later LayerNorm at its clean scale, the pooler linearised at tanh and the classifier, dotted with ∂LD/∂logits"
                )
            ),
            (
                "units",
                .array(
                    units.indices.map { u in
                        .object([
                            ("unit", .string(units[u])),
                            (
                                "by_part",
                                .object(
                                    PairPart.allCases.map { p in
                                        (
                                            p.rawValue,
                                            .object([
                                                ("delta", f(byPart[u][p]?.mean ?? .nan)),
                                                ("standard_error", f(byPart[u][p]?.se ?? .nan)),
                                            ])
                                        )
                                    })
                            ),
                            (
                                "direct_logit_attribution",
                                direct.map { .object([("mean", f($0[u].mean)), ("standard_error", f($0[u].se))]) }
                                    ?? .null
                            ),
                        ])
                    })
            ),
        ])
    }

    public var table: [String] {
        var lines = [
            "\(pairs) pairs; corrupted by \(corruption); Δ of the entailment log-odds ± its standard error",
            "unit        "
                + PairPart.allCases.map { $0.rawValue.padding(toLength: 20, withPad: " ", startingAt: 0) }
                .joined() + "direct (DLA)",
        ]
        for u in units.indices {
            let cells = PairPart.allCases.map { p in
                String(format: "%+.4f ± %.4f", byPart[u][p]?.mean ?? .nan, byPart[u][p]?.se ?? .nan).padding(
                    toLength: 20, withPad: " ", startingAt: 0)
            }
            let dla = direct.map { String(format: "%+.4f ± %.4f", $0[u].mean, $0[u].se) } ?? "—"
            lines.append(units[u].padding(toLength: 12, withPad: " ", startingAt: 0) + cells.joined() + dla)
        }
        return lines
    }
}
