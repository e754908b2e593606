// What `hcore circuits readers` prints: the readers table (receivers by FDR-adjusted significance, with Δ, its
// share of the core's total effect, its controls and subcases) and the whole measurement as JSON.
import Checkpoint
import Eval
import Foundation
import Model

extension PatchReport {
    public var json: JSONValue {
        func f(_ x: Double) -> JSONValue { x.isNaN ? .null : .float(x) }
        return .object([
            ("senders", .array(senders.names.map { .string($0) })), ("corruption", .string(corruption)),
            ("sample", .string(sample)), ("freeze_other_heads", .bool(settings.freeze)),
            ("layernorm", .string(settings.frozenLayerNorm ? "scales frozen at the clean run's" : "recomputed")),
            ("measure", .string("mean Δ of z_entailment − logsumexp(other logits), patched − clean")),
            ("total_effect", f(totalEffect)), ("total_effect_layernorm_recomputed", f(totalRecomputed)),
            ("controls", .int(controls.count)), ("control_rule", .string(controlRule)),
            ("control_senders", .array(controlSenders.map { .array($0.names.map { .string($0) }) })),
            ("seed", .unsigned(seed)),
            ("groups", .object(groups.map { ($0.name, .int($0.examples.count)) })),
            (
                "p_value",
                .string(
                    "two-sided Student t prediction test of Δ against the controls' Δs (controls − 1 df); q: Benjamini–Hochberg across receivers; p_rank: (1 + #{|Δ_control| ≥ |Δ|}) / (1 + controls)"
                )
            ),
            (
                "receivers",
                .array(
                    statistics.indices.map { r in
                        let s = statistics[r]
                        return .object([
                            ("receiver", .string(s.receiver.description)), ("delta", f(s.delta)),
                            ("standard_error", f(s.standardError)), ("fraction_of_total", f(s.fraction)),
                            (
                                "delta_by_group",
                                .object(groups.map { g in (g.name, f(effects.mean(r, examples: g.examples))) })
                            ),
                            ("control_mean", f(s.controlMean)), ("control_sd", f(s.controlSD)),
                            ("excess_fraction_of_total", f(excess(s))), ("p", f(s.pT)),
                            ("q", f(s.q)), ("p_rank", f(s.pRank)),
                        ])
                    })
            ),
        ])
    }

    /// Δ beyond the controls' mean, as a share of the senders' total effect: what the core sends through a
    /// receiver that sender sets like it do not (a tiny control spread makes a tiny excess significant).
    public func excess(_ s: ReceiverStatistic) -> Double {
        totalEffect == 0 ? .nan : (s.delta - s.controlMean) / abs(totalEffect)
    }

    /// The receivers at q < alpha, the largest excess first.
    func significant(alpha: Double = 0.05) -> [ReceiverStatistic] {
        statistics.filter { $0.q < alpha }.sorted { abs(excess($0)) > abs(excess($1)) }
    }

    /// One line: how many receivers differ from the controls, how many by 5% of the total or more, the
    /// strongest.
    public var summaryLine: String {
        let significant = significant()
        let material = significant.filter { abs(excess($0)) >= 0.05 }
        let top = significant.prefix(5).map {
            String(
                format: "%@ Δ %+.3f (controls %+.3f; excess %+.0f%% of the total, q %.2g)",
                $0.receiver.description, $0.delta, $0.controlMean, excess($0) * 100, $0.q)
        }
        return
            "readers of the core (path patching, \(controls.count) control sender sets): \(significant.count) of \(statistics.count) receivers differ from the controls at q < 0.05, \(material.count) of them by ≥ 5% of the core's total effect"
            + (top.isEmpty ? "" : "; largest: " + top.joined(separator: ", "))
            + String(format: "; the core's total effect %+.3f", totalEffect)
    }

    /// The readers table: the receivers with q below `alpha` (then the strongest others, up to `top`).
    public func table(top: Int = 20, alpha: Double = 0.05) -> [String] {
        let order = statistics.indices.sorted {
            let (a, b) = (statistics[$0], statistics[$1])
            return (a.q.isNaN ? 2 : a.q, -abs(a.delta)) < (b.q.isNaN ? 2 : b.q, -abs(b.delta))
        }
        let significant = order.filter { statistics[$0].q < alpha }.count
        let material = self.significant(alpha: alpha).filter { abs(excess($0)) >= 0.05 }.count
        var lines = [
            "senders: " + senders.names.joined(separator: " ") + " · corrupted by \(corruption)",
            "pairs: \(sample.isEmpty ? "\(groups[0].examples.count)" : sample)",
            "other heads \(settings.freeze ? "frozen at their clean context" : "recomputed") · LayerNorm scales \(settings.frozenLayerNorm ? "frozen at the clean run's" : "recomputed")",
            String(
                format: "total effect of the senders on the entailment log-odds: %+.4f (LayerNorms recomputed: %+.4f)",
                totalEffect, totalRecomputed),
            "controls: \(controls.count) sender sets, \(controlRule)",
            "\(significant) of \(statistics.count) receivers differ from the controls at q < \(alpha) (Student t prediction test, Benjamini–Hochberg), \(material) of them by ≥ 5% of the total effect (excess: Δ − the controls' mean, over |total|)",
            "receiver        Δ ± se              of total   controls (mean ± sd)   excess    p        q        p_rank   "
                + groups.dropFirst().map {
                    paperSubcaseName($0.name).prefix(12).padding(toLength: 13, withPad: " ", startingAt: 0)
                }.joined(),
        ]
        for r in order.prefix(max(top, significant)) {
            let s = statistics[r]
            let cells = groups.dropFirst().map {
                String(format: "%+.4f", effects.mean(r, examples: $0.examples)).padding(
                    toLength: 13, withPad: " ", startingAt: 0)
            }
            lines.append(
                s.receiver.description.padding(toLength: 16, withPad: " ", startingAt: 0)
                    + String(format: "%+.4f ± %.4f   ", s.delta, s.standardError)
                    + String(format: "%+7.1f%%   ", s.fraction * 100)
                    + String(format: "%+.4f ± %.4f      ", s.controlMean, s.controlSD)
                    + String(format: "%+6.1f%%   ", excess(s) * 100)
                    + String(format: "%-9.2g%-9.2g%-9.3f", s.pT, s.q, s.pRank) + cells.joined())
        }
        return lines
    }
}
