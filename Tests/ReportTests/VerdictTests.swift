// The verdict runs its four tests in order and names the one that decided; "shown" needs all four.
import XCTest

@testable import Report

final class VerdictTests: XCTestCase {
    let six = [0.40, 0.45, 0.50, 0.52, 0.54, 0.60]

    func span(_ s: Double, _ low: Double, _ high: Double, noiseP: Double = 0.001) -> SpanStatistics {
        SpanStatistics(
            span: s, interval: (low, high), bootstraps: 2000, noiseMean: 2, noise95: 3, noiseP: noiseP,
            permutations: 2000, seed: 0)
    }
    func lean(_ residual: Double) -> LeanStatistics {
        LeanStatistics(withInDomain: -0.2, withEntailed: -0.3, rSquared: 0.3, residualSpan: residual)
    }
    func decide(_ xs: [Double], _ s: SpanStatistics?, _ l: LeanStatistics?) -> Verdict {
        Verdict.decide(measures: xs, matchWords: "dev > 90 − 3 points", measureName: "the measure", span: s, lean: l)
    }

    func testEachTestDecidesInTurn() {
        let cases: [(Verdict, Verdict.Outcome, String)] = [
            (decide(Array(six.prefix(5)), span(20, 18, 22), lean(19)), .notShown, "matching"),
            (decide(six, span(20, 18, 22, noiseP: 0.2), lean(19)), .notShown, "noise"),
            (decide(six, span(20, 10, 14.9), lean(19)), .notShown, "interval"),
            (decide(six, span(20, 14, 22), lean(19)), .inconclusive, "interval"),
            (decide(six, span(20, 15, 22), lean(14.9)), .notShown, "lean"),
            (decide(six, span(20, 15, 22), lean(15)), .shown, "all four"),
            (decide(six, nil, lean(19)), .inconclusive, "per-pair predictions"),
        ]
        for (v, outcome, test) in cases {
            XCTAssertEqual(v.outcome, outcome, v.text)
            XCTAssertEqual(v.decidedBy, test, v.text)
            XCTAssertTrue(v.text.contains("Deciding test: \(test)"), v.text)
            XCTAssertTrue(v.text.contains("≥ 6 matching subnetworks spanning ≥ 15 points"), v.text)
        }
        XCTAssertTrue(cases[0].0.text.contains("only 5 subnetworks match"), cases[0].0.text)
        XCTAssertTrue(cases[4].0.text.contains("a lean towards one label"), cases[4].0.text)
        XCTAssertTrue(
            cases[5].0.text.hasPrefix("The paper's phenomenon is shown: 6 subnetworks match"), cases[5].0.text)
        XCTAssertTrue(cases[5].0.text.contains("spans 20.0 points (40.0–60.0)"), cases[5].0.text)
        XCTAssertTrue(cases[3].0.text.hasPrefix("Whether the paper's phenomenon is shown here is INCONCLUSIVE"))
    }
}
