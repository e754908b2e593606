// The verdict on the paper's phenomenon — subnetworks that match the full model in-domain but generalise
// differently out of domain — as four tests in a fixed order, each with its uncertainty. The bar is the one
// stated before any run was measured: at least 6 matching subnetworks whose OOD measure spans at least 15
// points (the paper: ~25 points among 12 bert-base subnetworks at 50% sparsity).
//
//   1 matching  ≥ 6 subnetworks match (MatchRule)                        fails → not shown
//   2 noise     the span beats the noise span (permutation p < 0.05)    fails → not shown
//   3 interval  95% bootstrap interval of the span ≥ 15                 below → not shown; straddles → inconclusive
//   4 lean      the residual span, after in-domain accuracy and
//               entailed accuracy are regressed out, ≥ 15              fails → not shown (a lean, not generalisation)
// The first test that does not pass decides; "shown" needs all four. Without per-pair predictions tests 2–3
// cannot run and the verdict is inconclusive.
import Foundation

public struct Verdict: Sendable {
    public enum Outcome: String, Sendable {
        case shown
        case notShown = "not shown"
        case inconclusive
    }
    public static let shownMatching = 6
    public static let shownPoints = 15.0
    public static let noiseLevel = 0.05

    public var outcome: Outcome
    /// The test that decided: "matching", "noise", "interval", "lean", "per-pair predictions", or "all four".
    public var decidedBy: String
    public var text: String

    static var bar: String {
        "bar: ≥ \(shownMatching) matching subnetworks spanning ≥ \(fmt(shownPoints, 0)) points; the paper's 12 bert-base subnetworks span ~25"
    }

    /// The verdict from the matching subnetworks' measures (fractions), the span's statistics and the lean's.
    public static func decide(
        measures: [Double], matchWords: String, measureName: String, span: SpanStatistics?, lean: LeanStatistics?
    ) -> Verdict {
        let n = measures.count
        func make(_ o: Outcome, _ test: String, _ body: String) -> Verdict {
            let head: String
            switch o {
            case .shown: head = "The paper's phenomenon is shown"
            case .notShown: head = "The paper's phenomenon is NOT shown here"
            case .inconclusive: head = "Whether the paper's phenomenon is shown here is INCONCLUSIVE"
            }
            return Verdict(
                outcome: o, decidedBy: test, text: "\(head): \(body) Deciding test: \(test) (\(bar)).")
        }
        let matched = "\(n) subnetworks match the full model in-domain (\(matchWords))"
        guard n >= shownMatching, let lo = measures.min(), let hi = measures.max() else {
            return make(.notShown, "matching", "only \(matched); at least \(shownMatching) are needed.")
        }
        let range =
            "their \(measureName) spans \(fmt((hi - lo) * 100, 1)) points (\(fmt(lo * 100, 1))–\(fmt(hi * 100, 1)))"
        guard let s = span else {
            return make(
                .inconclusive, "per-pair predictions",
                "\(matched); \(range), but without per-pair predictions neither its interval nor its noise span can be measured (hcore eval's per-example predictions)."
            )
        }
        let measured =
            "\(matched); \(range), 95% bootstrap interval over pairs \(fmt(s.interval.low, 1))–\(fmt(s.interval.high, 1)); identical subnetworks would span \(fmt(s.noiseMean, 1)) on average (95th percentile \(fmt(s.noise95, 1)), p = \(fmt(s.noiseP, 4)))"
        guard s.noiseP < noiseLevel else {
            return make(.notShown, "noise", "\(measured): the spread is within what noise gives.")
        }
        if s.interval.high < shownPoints {
            return make(
                .notShown, "interval", "\(measured): the whole interval lies below \(fmt(shownPoints, 0)) points.")
        }
        if s.interval.low < shownPoints {
            return make(
                .inconclusive, "interval", "\(measured): the interval straddles \(fmt(shownPoints, 0)) points.")
        }
        guard let l = lean else {
            return make(.inconclusive, "lean", "\(measured); the lean could not be fitted.")
        }
        let leanWords =
            "in-domain accuracy and HANS entailed accuracy explain R² = \(fmt(l.rSquared, 2)) of it (r \(signed(l.withInDomain)) and \(signed(l.withEntailed))), leaving a residual span of \(fmt(l.residualSpan, 1)) points"
        guard l.residualSpan >= shownPoints else {
            return make(
                .notShown, "lean",
                "\(measured); but \(leanWords): the spread is mostly a lean towards one label or an in-domain shortfall, not a difference in generalisation."
            )
        }
        return make(.shown, "all four", "\(measured); \(leanWords).")
    }
}

func signed(_ x: Double?) -> String { x.map { String(format: "%+.2f", $0) } ?? "n/a" }
