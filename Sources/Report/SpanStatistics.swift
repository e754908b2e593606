// How far apart the matching subnetworks are out of domain, with its uncertainty and its null.
//
//   measure    a subnetwork's mean accuracy over the groups (the paper's four plotted HANS subcases), each
//              group's accuracy over its pairs
//   span       max − min of the measure over the matching subnetworks, in points
//   interval   bootstrap over pairs: each resample draws every group's pairs with replacement (the same draw
//              for every subnetwork, so their agreement on a pair is kept) and recomputes the span; the 2.5th and
//              97.5th percentiles. The span is a range, so noise widens it: the interval is of the span as
//              measured, and the noise span below says how much of it noise alone gives.
//   noise      the span expected with no true difference between the subnetworks: for every pair, which
//              subnetworks got it right is permuted among them (each pair keeps how many did), and the span
//              recomputed; its mean, 95th percentile and the permutation p-value of the observed span
//   lean       each subnetwork's measure regressed (least squares, with an intercept) on its in-domain
//              accuracy and its accuracy on entailed HANS pairs: the correlations, R², and the span of the
//              residuals — what is left of the spread after what a lean towards "non-entailment" and the
//              in-domain shortfall explain
// All draws are seeded.
import Foundation
import Kernels
import Model

/// Which matching subnetworks got each OOD pair right, and the pairs' groups.
public struct PairTable: Sendable {
    public var names: [String]
    /// [subnetwork][pair]
    public var correct: [[Bool]]
    /// The pairs of each group (e.g. subcase), every pair in exactly one.
    public var groups: [[Int]]

    public init(names: [String], correct: [[Bool]], groups: [[Int]]) throws {
        let pairs = correct.first?.count ?? 0
        guard correct.count == names.count, correct.allSatisfy({ $0.count == pairs }) else {
            throw ModelError.badInput("every subnetwork needs one verdict per pair")
        }
        guard !groups.isEmpty, groups.allSatisfy({ !$0.isEmpty }),
            groups.flatMap({ $0 }).sorted() == Array(0..<pairs)
        else {
            throw ModelError.badInput("every pair must lie in exactly one non-empty group")
        }
        (self.names, self.correct, self.groups) = (names, correct, groups)
    }

    /// Each subnetwork's measure (a fraction), the pairs weighted by `weights` (nil: each once).
    func measures(weights: [Int]? = nil) -> [Double] {
        correct.map { row in
            groups.map { g in
                var (hits, total) = (0, 0)
                for i in g {
                    let w = weights?[i] ?? 1
                    total += w
                    if row[i] { hits += w }
                }
                return total == 0 ? 0 : Double(hits) / Double(total)
            }.reduce(0, +) / Double(groups.count)
        }
    }
}

/// max − min, in points.
func spanPoints(_ xs: [Double]) -> Double { xs.isEmpty ? .nan : (xs.max()! - xs.min()!) * 100 }

public struct SpanStatistics: Sendable {
    public var span: Double
    public var interval: (low: Double, high: Double)
    public var bootstraps: Int
    public var noiseMean: Double, noise95: Double, noiseP: Double
    public var permutations: Int
    public var seed: UInt64
}

/// The span with its bootstrap interval and its noise null (see the file comment).
public func spanStatistics(_ t: PairTable, bootstraps: Int = 2000, permutations: Int = 2000, seed: UInt64 = 0)
    -> SpanStatistics
{
    let span = spanPoints(t.measures())
    var rng = SplitMix64(seed: seed)
    var weights = [Int](repeating: 0, count: t.correct.first?.count ?? 0)
    var spans: [Double] = []
    for _ in 0..<bootstraps {
        for i in weights.indices { weights[i] = 0 }
        for g in t.groups { for _ in g { weights[g[Int(rng.next() % UInt64(g.count))]] += 1 } }
        spans.append(spanPoints(t.measures(weights: weights)))
    }
    spans.sort()
    var noise: [Double] = []
    var permuted = t
    for _ in 0..<permutations {
        for i in weights.indices {
            var column = t.correct.map { $0[i] }
            rng.shuffle(&column)
            for s in column.indices { permuted.correct[s][i] = column[s] }
        }
        noise.append(spanPoints(permuted.measures()))
    }
    let atLeast = noise.filter { $0 >= span - 1e-9 }.count
    noise.sort()
    return SpanStatistics(
        span: span, interval: (percentile(spans, 0.025), percentile(spans, 0.975)), bootstraps: bootstraps,
        noiseMean: noise.isEmpty ? .nan : noise.reduce(0, +) / Double(noise.count),
        noise95: percentile(noise, 0.95), noiseP: Double(1 + atLeast) / Double(1 + permutations),
        permutations: permutations, seed: seed)
}

/// The q-th quantile of sorted `xs`, linear between order statistics (numpy's default); NaN when empty.
func percentile(_ xs: [Double], _ q: Double) -> Double {
    guard !xs.isEmpty else { return .nan }
    let h = q * Double(xs.count - 1)
    let lo = Int(h.rounded(.down))
    let hi = min(xs.count - 1, lo + 1)
    return xs[lo] + (h - Double(lo)) * (xs[hi] - xs[lo])
}

/// The measure against in-domain accuracy and entailed accuracy over the matching subnetworks.
public struct LeanStatistics: Sendable {
    /// Pearson correlation of the measure with in-domain accuracy, and with entailed accuracy.
    public var withInDomain: Double?, withEntailed: Double?
    /// R² of the two-predictor least-squares fit, and the span of its residuals (points).
    public var rSquared: Double
    public var residualSpan: Double
}

/// Least squares of `y` on [1, a, b]; nil with fewer than 4 points or a singular design.
public func leanStatistics(measure y: [Double], inDomain a: [Double], entailed b: [Double]) -> LeanStatistics? {
    let n = y.count
    guard n >= 4, a.count == n, b.count == n else { return nil }
    let X = (0..<n).map { [1, a[$0], b[$0]] }
    // Normal equations, solved by Gaussian elimination with partial pivoting (3 × 3).
    var M = (0..<3).map { r in (0..<3).map { c in (0..<n).reduce(0.0) { $0 + X[$1][r] * X[$1][c] } } }
    var v = (0..<3).map { r in (0..<n).reduce(0.0) { $0 + X[$1][r] * y[$1] } }
    for c in 0..<3 {
        guard let p = (c..<3).max(by: { abs(M[$0][c]) < abs(M[$1][c]) }), abs(M[p][c]) > 1e-12 else { return nil }
        M.swapAt(c, p)
        v.swapAt(c, p)
        for r in 0..<3 where r != c {
            let f = M[r][c] / M[c][c]
            for k in 0..<3 { M[r][k] -= f * M[c][k] }
            v[r] -= f * v[c]
        }
    }
    let beta = (0..<3).map { v[$0] / M[$0][$0] }
    let residuals = (0..<n).map { i in y[i] - (0..<3).reduce(0.0) { $0 + beta[$1] * X[i][$1] } }
    let mean = y.reduce(0, +) / Double(n)
    let total = y.reduce(0) { $0 + ($1 - mean) * ($1 - mean) }
    let rss = residuals.reduce(0) { $0 + $1 * $1 }
    return LeanStatistics(
        withInDomain: correlation(y, a), withEntailed: correlation(y, b),
        rSquared: total > 0 ? 1 - rss / total : 0, residualSpan: spanPoints(residuals))
}

/// Pearson's r; nil when either side does not vary.
func correlation(_ x: [Double], _ y: [Double]) -> Double? {
    let n = Double(x.count)
    guard x.count == y.count, x.count > 1 else { return nil }
    let (mx, my) = (x.reduce(0, +) / n, y.reduce(0, +) / n)
    var (sxy, sxx, syy) = (0.0, 0.0, 0.0)
    for i in x.indices {
        sxy += (x[i] - mx) * (y[i] - my)
        sxx += (x[i] - mx) * (x[i] - mx)
        syy += (y[i] - my) * (y[i] - my)
    }
    return sxx > 0 && syy > 0 ? sxy / (sxx * syy).squareRoot() : nil
}
