// The tests behind the circuits claims, against closed forms and brute force: Benjamini–Hochberg by its
// definition, Student's t tail by its closed forms for 1 and 2 degrees of freedom, the prediction test, and a
// readers report's per-receiver statistics recomputed by hand.
import Foundation
import Kernels
import XCTest

@testable import Circuits

final class StatisticsTests: XCTestCase {
    /// q_i = min over j with p_j ≥ p_i of min(1, m·p_j / rank_j), ranks of the sorted p (ties by position).
    func testBenjaminiHochbergAgainstItsDefinition() {
        var rng = SplitMix64(seed: 9)
        for trial in 0..<50 {
            let m = 1 + trial % 12
            let p = (0..<m).map { _ in (trial % 3 == 0 ? 0.05 : 1) * rng.uniform() }
            let order = p.indices.sorted { p[$0] < p[$1] }
            var rank = [Int](repeating: 0, count: m)
            for (r, i) in order.enumerated() { rank[i] = r + 1 }
            let want = p.indices.map { i in
                p.indices.filter { rank[$0] >= rank[i] }.map { min(1, Double(m) * p[$0] / Double(rank[$0])) }.min()!
            }
            let got = benjaminiHochberg(p)
            for i in 0..<m { XCTAssertEqual(got[i], want[i], accuracy: 1e-12, "trial \(trial)") }
        }
        XCTAssertTrue(benjaminiHochberg([0.01, .nan, 0.02])[1].isNaN)
        XCTAssertEqual(benjaminiHochberg([0.01, .nan, 0.02])[0], 0.02, accuracy: 1e-12)  // m = 2
    }

    /// ν = 1 is Cauchy: P(T > t) = 1/2 − atan(t)/π; ν = 2: P(T > t) = (1 − t/√(2 + t²))/2.
    func testStudentTailAgainstClosedForms() {
        for t in [0.0, 0.3, 1, 2.5, 10, 100] {
            XCTAssertEqual(studentTUpperTail(t, degrees: 1), 0.5 - atan(t) / .pi, accuracy: 1e-10, "t \(t)")
            XCTAssertEqual(
                studentTUpperTail(t, degrees: 2), (1 - t / (2 + t * t).squareRoot()) / 2, accuracy: 1e-10, "t \(t)")
            XCTAssertEqual(studentTUpperTail(-t, degrees: 5) + studentTUpperTail(t, degrees: 5), 1, accuracy: 1e-10)
        }
        // Large ν approaches the normal tail: P(Z > 1.96) = 0.0249979.
        XCTAssertEqual(studentTUpperTail(1.959964, degrees: 1e6), 0.025, accuracy: 1e-5)
    }

    /// The prediction test's t by hand: controls 1…5 (mean 3, s √2.5), x = 9: t = 6 / (√2.5·√1.2), 4 df.
    func testPredictionTest() {
        let t = 6 / (2.5.squareRoot() * 1.2.squareRoot())
        XCTAssertEqual(
            predictionTestP(9, controls: [1, 2, 3, 4, 5]), 2 * studentTUpperTail(t, degrees: 4), accuracy: 1e-12)
        XCTAssertEqual(predictionTestP(3, controls: [1, 2, 3, 4, 5]), 1, accuracy: 1e-12)
        XCTAssertTrue(predictionTestP(3, controls: [1]).isNaN)
    }

    /// A readers report's statistics recomputed from its effects: Δ and its standard error over pairs, the
    /// share of the total effect, the controls' mean and sd, both p-values and q.
    func testReceiverStatisticsByHand() {
        let receivers: [PatchReceiver] = [.head(layer: 1, head: 0, input: "q"), .logits]
        var effects = PatchEffects(receivers: receivers, deltas: [[0.5, 0.7, 0.6], [0.1, -0.1, 0.0]])
        effects.total = [1.0, 1.2, 1.4]
        effects.totalRecomputed = [1, 1, 1]
        let controls = [[0.05, 0.1, -0.02], [0.3, 0.2, 0.25]].map { c -> PatchEffects in
            PatchEffects(receivers: receivers, deltas: [c, c.map { -$0 }])
        }
        var report = PatchReport(
            senders: PatchSenders(heads: [(0, 1)]), effects: effects, controls: controls,
            controlSenders: [], controlRule: "", groups: [("all", [0, 1, 2])], settings: PatchSettings(), seed: 0,
            corruption: "", sample: "")
        report.computeStatistics()
        let s = report.statistics[0]
        XCTAssertEqual(s.delta, 0.6, accuracy: 1e-12)
        XCTAssertEqual(s.standardError, (0.02 / 2 / 3).squareRoot(), accuracy: 1e-12)
        XCTAssertEqual(s.fraction, 0.6 / 1.2, accuracy: 1e-12)
        let c = [0.13 / 3, 0.25]
        XCTAssertEqual(s.controlMean, (c[0] + c[1]) / 2, accuracy: 1e-12)
        XCTAssertEqual(report.excess(s), (0.6 - (c[0] + c[1]) / 2) / 1.2, accuracy: 1e-12)
        XCTAssertEqual(s.pT, predictionTestP(0.6, controls: c), accuracy: 1e-12)
        XCTAssertEqual(s.pRank, 1.0 / 3, accuracy: 1e-12)  // neither control reaches |0.6|
        XCTAssertEqual(report.statistics.map(\.q), benjaminiHochberg(report.statistics.map(\.pT)))
        XCTAssertEqual(report.statistics[1].pRank, 1, accuracy: 1e-12)  // Δ 0 is reached by every control
    }
}
