// The numbers each figure draws, computed as the reference's plotting scripts compute them (seaborn's
// defaults where a script relies on them): means over seeds with a seeded 95% bootstrap band, the effective
// size walk, and the violins' kernel density (Gaussian, Scott's bandwidth, cut at the data).
import Foundation
import Kernels

/// Mean and 95% percentile-bootstrap band of the mean (seaborn's `errorbar=("ci", 95)`, 1000 resamples),
/// with a seeded generator so that a figure is reproducible.
public struct MeanBand: Sendable, Equatable {
    public var mean: Double, low: Double, high: Double
    public init(mean: Double, low: Double, high: Double) { (self.mean, self.low, self.high) = (mean, low, high) }
}

public func meanBand(_ xs: [Double], resamples: Int = 1000, seed: UInt64) -> MeanBand {
    guard !xs.isEmpty else { return MeanBand(mean: .nan, low: .nan, high: .nan) }
    let mean = xs.reduce(0, +) / Double(xs.count)
    guard xs.count > 1 else { return MeanBand(mean: mean, low: mean, high: mean) }
    var rng = SplitMix64(seed: seed &+ SplitMix64.gamma)
    var means = (0..<resamples).map { _ in
        (0..<xs.count).reduce(0.0) { s, _ in s + xs[Int(rng.next() % UInt64(xs.count))] } / Double(xs.count)
    }
    means.sort()
    return MeanBand(mean: mean, low: percentile(means, 2.5), high: percentile(means, 97.5))
}

/// Linear-interpolated percentile of sorted values (numpy's default).
public func percentile(_ sorted: [Double], _ p: Double) -> Double {
    guard !sorted.isEmpty else { return .nan }
    let r = p / 100 * Double(sorted.count - 1)
    let i = Int(r.rounded(.down))
    let f = r - Double(i)
    return i + 1 < sorted.count ? sorted[i] + f * (sorted[i + 1] - sorted[i]) : sorted[i]
}

/// One seed's effective size at one fine-tuning step: walk the target sparsities from the highest down and
/// take the first whose mean accuracy over `cases` exceeds the full model's mean minus `margin`
/// (none: sparsity 0); the size is 100 − that sparsity. A target whose cell lacks one of the cases is skipped.
public func effectiveSize(targets: [Int: CaseAccuracies], full: CaseAccuracies, cases: [String], margin: Double) -> Int
{
    let fullMean = cases.map { full[$0] ?? .nan }.reduce(0, +) / Double(cases.count)
    for target in targets.keys.sorted(by: >) {
        let cell = targets[target]!
        guard cases.allSatisfy({ cell[$0] != nil }) else { continue }
        if cases.map({ cell[$0]! }).reduce(0, +) / Double(cases.count) > fullMean - margin { return 100 - target }
    }
    return 100
}

/// The effective-size series of a grid against the full model's fine-tuning curve: per step of the grid, each seed's size.
public struct EffectiveSizeSeries: Sendable {
    public var name: String
    public var cases: [String]
    public var steps: [Int]
    /// [step][seed]
    public var sizes: [[Int]]
    public var means: [Double] { sizes.map { Double($0.reduce(0, +)) / Double(max(1, $0.count)) } }
}

public func effectiveSizes(
    grid: [String: [Int: [Int: CaseAccuracies]]], curve: [Int: CaseAccuracies], cases: [String],
    name: String, margin: Double
) throws -> EffectiveSizeSeries {
    // The steps are the grid's (its first seed's, as the reference's QQP script); the curve may have more.
    let seeds = grid.keys.sorted()
    let steps = (seeds.first.flatMap { grid[$0]?.keys.sorted() }) ?? []
    var sizes: [[Int]] = []
    for step in steps {
        guard let full = curve[step] else {
            throw FiguresError.missing("the fine-tuning curve has no step \(step) (the sparsity grid has it)")
        }
        sizes.append(
            try seeds.map { seed in
                guard let targets = grid[seed]?[step] else {
                    throw FiguresError.missing(
                        "the sparsity grid has no step \(step) for seed \(seed) (seed \(seeds[0]) has it)")
                }
                return effectiveSize(targets: targets, full: full, cases: cases, margin: margin)
            })
    }
    return EffectiveSizeSeries(name: name, cases: cases, steps: steps, sizes: sizes)
}

/// Gaussian kernel density of `xs` at `points`, bandwidth by Scott's rule (scipy's gaussian_kde, which
/// seaborn's violins use): h = σ · n^(−1/5) with σ the sample standard deviation (ddof 1).
public func kernelDensity(_ xs: [Double], at points: [Double]) -> [Double] {
    let n = Double(xs.count)
    guard xs.count > 1 else { return points.map { _ in 0 } }
    let m = xs.reduce(0, +) / n
    let sd = (xs.reduce(0) { $0 + ($1 - m) * ($1 - m) } / (n - 1)).squareRoot()
    guard sd > 0 else { return points.map { _ in 0 } }
    let h = sd * pow(n, -0.2)
    return points.map { p in
        xs.reduce(0) { $0 + exp(-0.5 * (($1 - p) / h) * (($1 - p) / h)) } / (n * h * (2 * Double.pi).squareRoot())
    }
}
