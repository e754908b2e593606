// Which subnetworks match the full model in-domain — the one rule every core, report and verdict uses.
//
// The reference's effective-size rule (scripts/visualization/mnli-effective-size.py): a subnetwork is
// faithful when its in-domain accuracy exceeds the full model's minus a margin of 0.03. It is one-sided on
// purpose: a subnetwork better than the full model in-domain still matches it. Fewer than `minimumCount`
// matching subnetworks is a refusal, since the intersection of one or two masks says nothing about a core.
import Checkpoint
import Eval
import Failures
import Foundation
import Store

public struct MatchRule: Sendable {
    /// The reference's margin: 3 accuracy points.
    public static let referenceMargin = 0.03
    /// The in-domain measure's name, for messages (e.g. eval/dev).
    public var metric: String
    /// The full model's value of the in-domain measure (a fraction).
    public var full: Double
    /// Allowed shortfall (a fraction: 0.03 is 3 points).
    public var margin: Double
    public var minimumCount: Int

    public init(metric: String, full: Double, margin: Double = referenceMargin, minimumCount: Int = 3) throws {
        guard full.isFinite, (0...1).contains(full) else {
            throw SettingError("id-reference", "must be an accuracy in [0, 1], not \(full)")
        }
        guard margin.isFinite, margin >= 0, margin < 1 else {
            throw SettingError("margin", "must be in [0, 1) (0.03 is 3 points), not \(margin)")
        }
        guard minimumCount >= 1 else { throw SettingError("min-subnetworks", "must be ≥ 1") }
        (self.metric, self.full, self.margin, self.minimumCount) = (metric, full, margin, minimumCount)
    }

    /// accuracy > full − margin (the reference's comparison, strict).
    public func matches(_ accuracy: Double) -> Bool { accuracy > full - margin }

    /// The rule in words, for every output that states a selection.
    public var words: String {
        "\(metric) > \(fmtPoints(full)) − \(fmtPoints(margin)) points (the full model's value minus the margin; the reference's effective-size rule)"
    }
}

/// A subnetwork with its in-domain value, the input of the matching rule.
public struct ScoredSubnetwork: Sendable {
    public var subnetwork: StoredSubnetwork
    public var inDomain: Double
    public init(_ subnetwork: StoredSubnetwork, inDomain: Double) {
        (self.subnetwork, self.inDomain) = (subnetwork, inDomain)
    }
}

/// The subnetworks `rule` keeps, in the order given, and those it leaves out; fewer than the rule's minimum
/// is an error naming how many matched.
public func matchingSubnetworks(_ scored: [ScoredSubnetwork], rule: MatchRule) throws -> (
    matching: [StoredSubnetwork], excluded: [String]
) {
    let matching = scored.filter { rule.matches($0.inDomain) }.map(\.subnetwork)
    guard matching.count >= rule.minimumCount else {
        throw SettingError(
            "margin",
            "leaves \(matching.count) of \(scored.count) subnetworks matching the full model in-domain (\(rule.words)); a core needs at least \(rule.minimumCount): widen the margin or prune more seeds"
        )
    }
    let kept = Set(matching.map(\.name))
    return (matching, scored.map(\.subnetwork.name).filter { !kept.contains($0) })
}

/// Each subnetwork with its stored value of `metric` (`hcore eval --write-back` writes eval/DATASET); one
/// without it is an error naming it.
public func scoredByMetadata(_ subs: [StoredSubnetwork], metric: String) throws -> [ScoredSubnetwork] {
    try subs.map { s in
        guard let v = s.meta.get(metric)?.doubleValue, v.isFinite else {
            throw DataError.badFile(
                path: "the store",
                reason:
                    "subnetwork '\(s.name)' has no finite '\(metric)' in its metadata; write an evaluation's metrics back into the store first (hcore eval's write-back)"
            )
        }
        return ScoredSubnetwork(s, inDomain: v)
    }
}

func fmtPoints(_ fraction: Double) -> String { String(format: "%g", (fraction * 1000).rounded() / 10) }
