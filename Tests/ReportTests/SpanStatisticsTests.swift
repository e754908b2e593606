// The span's bootstrap interval and noise null against exact enumerations on tiny tables, and the lean's
// least squares against numpy.
import XCTest

@testable import Report

final class SpanStatisticsTests: XCTestCase {
    /// Two subnetworks, two groups of three pairs. Every bootstrap draw (3³ per group, 729 in all, equally
    /// likely) and every noise permutation (a coin per pair on which the two disagree) is enumerated.
    let table = try! PairTable(
        names: ["a", "b"],
        correct: [[true, true, false, true, false, false], [false, true, false, true, true, true]],
        groups: [[0, 1, 2], [3, 4, 5]])

    /// The span (points) of the two measures, each group's pairs counted with `weights`.
    func span(_ correct: [[Bool]], weights: [Int]) -> Double {
        var m: [Double] = []
        for row in correct {
            var total = 0.0
            for g in [[0, 1, 2], [3, 4, 5]] {
                var (hits, count) = (0, 0)
                for i in g {
                    count += weights[i]
                    if row[i] { hits += weights[i] }
                }
                total += Double(hits) / Double(count)
            }
            m.append(total / 2)
        }
        return abs(m[0] - m[1]) * 100
    }

    func testIntervalIsTheExactBootstrapQuantiles() {
        var exact: [Double] = []
        for d1 in 0..<27 {
            for d2 in 0..<27 {
                var w = [Int](repeating: 0, count: 6)
                for (draw, base) in [(d1, 0), (d2, 3)] {
                    w[base + draw % 3] += 1
                    w[base + (draw / 3) % 3] += 1
                    w[base + draw / 9] += 1
                }
                exact.append(span(table.correct, weights: w))
            }
        }
        exact.sort()
        let s = spanStatistics(table, bootstraps: 40_000, permutations: 0, seed: 5)
        XCTAssertEqual(s.span, span(table.correct, weights: [1, 1, 1, 1, 1, 1]), accuracy: 1e-9)
        XCTAssertEqual(s.span, 50.0 / 3, accuracy: 1e-9)  // a: 2/3 and 1/3 → 0.5; b: 1/3 and 1 → 2/3
        XCTAssertTrue(isQuantile(s.interval.low, 0.025, of: exact), "\(s.interval.low)")
        XCTAssertTrue(isQuantile(s.interval.high, 0.975, of: exact), "\(s.interval.high)")
    }

    func testNoiseSpanIsTheExactPermutationDistribution() {
        let disagree = (0..<6).filter { table.correct[0][$0] != table.correct[1][$0] }
        var spans: [Double] = []
        for bits in 0..<(1 << disagree.count) {
            var c = table.correct
            for (k, i) in disagree.enumerated() where bits & (1 << k) != 0 {
                c[0][i].toggle()
                c[1][i].toggle()
            }
            spans.append(span(c, weights: [1, 1, 1, 1, 1, 1]))
        }
        let exactMean = spans.reduce(0, +) / Double(spans.count)
        let observed = span(table.correct, weights: [1, 1, 1, 1, 1, 1])
        let exactP = Double(spans.filter { $0 >= observed - 1e-9 }.count) / Double(spans.count)
        let s = spanStatistics(table, bootstraps: 0, permutations: 40_000, seed: 8)
        XCTAssertEqual(s.noiseMean, exactMean, accuracy: 0.15)  // the Monte Carlo mean's sd here is ~0.05
        XCTAssertEqual(s.noiseP, exactP, accuracy: 0.01)
        XCTAssertGreaterThan(exactP, 0.2)  // a 17-point span on six pairs is what noise gives
        // Identical subnetworks: no span, none under the null.
        let same = try! PairTable(
            names: ["a", "b"], correct: [table.correct[0], table.correct[0]], groups: table.groups)
        let z = spanStatistics(same, bootstraps: 200, permutations: 200, seed: 1)
        XCTAssertEqual([z.span, z.interval.low, z.interval.high, z.noiseMean, z.noise95], [0, 0, 0, 0, 0])
        XCTAssertEqual(z.noiseP, 1)
    }

    func testSeededAndRefusesInconsistentTables() {
        let a = spanStatistics(table, bootstraps: 300, permutations: 300, seed: 4)
        let b = spanStatistics(table, bootstraps: 300, permutations: 300, seed: 4)
        XCTAssertEqual(
            [a.interval.low, a.interval.high, a.noiseMean, a.noiseP],
            [b.interval.low, b.interval.high, b.noiseMean, b.noiseP])
        // Pair 1 in no group; one row for two names; pair 1 in two groups.
        XCTAssertThrowsError(try PairTable(names: ["a"], correct: [[true, false]], groups: [[0]]))
        XCTAssertThrowsError(try PairTable(names: ["a", "b"], correct: [[true]], groups: [[0]]))
        XCTAssertThrowsError(try PairTable(names: ["a"], correct: [[true, true]], groups: [[0, 1], [1]]))
    }

    /// numpy.linalg.lstsq on the same six points (and numpy.corrcoef):
    /// r(y, a) = -0.705221439057626, r(y, b) = -0.9846153846153847, R² = 0.973919627583499,
    /// residual span 3.4549763033175003 points.
    func testLeanAgainstNumpy() throws {
        let y = [0.20, 0.25, 0.31, 0.18, 0.40, 0.22]
        let a = [0.90, 0.91, 0.88, 0.92, 0.89, 0.90]
        let b = [0.97, 0.95, 0.93, 0.99, 0.90, 0.96]
        let l = try XCTUnwrap(leanStatistics(measure: y, inDomain: a, entailed: b))
        XCTAssertEqual(l.withInDomain!, -0.705221439057626, accuracy: 1e-9)
        XCTAssertEqual(l.withEntailed!, -0.9846153846153847, accuracy: 1e-9)
        XCTAssertEqual(l.rSquared, 0.973919627583499, accuracy: 1e-9)
        XCTAssertEqual(l.residualSpan, 3.4549763033175003, accuracy: 1e-7)
        XCTAssertNil(leanStatistics(measure: y, inDomain: a, entailed: [Double](repeating: 0.9, count: 6)))
        XCTAssertNil(leanStatistics(measure: [0.1, 0.2, 0.3], inDomain: [0.9, 0.8, 0.7], entailed: [1, 0.9, 0.8]))
    }
}

/// x is a q-quantile of the distribution `xs` stands for when P(< x) ≤ q ≤ P(≤ x), here up to the Monte Carlo
/// error of the level (40,000 resamples: sd 0.0008 at 2.5%).
func isQuantile(_ x: Double, _ q: Double, of xs: [Double]) -> Bool {
    let n = Double(xs.count)
    let below = Double(xs.filter { $0 < x - 1e-9 }.count) / n
    let atOrBelow = Double(xs.filter { $0 <= x + 1e-9 }.count) / n
    return below <= q + 0.003 && atOrBelow >= q - 0.003
}
