// What every test target shares: where the repository and its fixtures are, reproducible random
// numbers, and one comparison that says how far apart two arrays are and where (in the spirit of ggml's
// test-backend-ops: every op against its reference, with its stated error bound).
import Foundation
import Kernels
import XCTest

/// The repository's root folder (this file is Tests/TestSupport/TestSupport.swift).
public let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// Tests/Fixtures.
public let fixturesFolder = repositoryRoot.appendingPathComponent("Tests/Fixtures")

/// Kernels' SplitMix64 with the float helpers tests use: the same numbers on every machine, so a failure
/// reproduces from its seed.
public struct SeededRNG {
    var generator: SplitMix64
    public init(_ seed: UInt64) { generator = SplitMix64(seed: seed) }

    public mutating func next() -> UInt64 { generator.next() }

    /// Uniform in [0, 1) with 24 bits.
    public mutating func uniform() -> Float { Float(next() >> 40) / Float(1 << 24) }
    /// Uniform in [0, 1) with 53 bits.
    public mutating func uniformDouble() -> Double { Double(next() >> 11) / Double(1 << 53) }
    /// Standard normal (Box–Muller).
    public mutating func normal() -> Float {
        let u1 = max(1e-7, Double(uniform())), u2 = Double(uniform())
        return Float((-2 * Foundation.log(u1)).squareRoot() * Foundation.cos(2 * .pi * u2))
    }
    public mutating func floats(_ n: Int, scale: Float = 1) -> [Float] { (0..<n).map { _ in normal() * scale } }
}

/// The largest |a[i] − b[i]|.
public func maxAbsDiff(_ a: [Float], _ b: [Float]) -> Float {
    precondition(a.count == b.count)
    return zip(a, b).map { abs($0 - $1) }.max() ?? 0
}

/// Fails unless every |actual[i] − expected[i]| ≤ bound, naming the worst element, its two values and the
/// bound; NaN anywhere fails.
public func assertClose(_ actual: [Float], _ expected: [Float], bound: Float, _ what: @autoclosure () -> String = "",
                        file: StaticString = #filePath, line: UInt = #line) {
    guard actual.count == expected.count else {
        XCTFail("\(what()): \(actual.count) values, expected \(expected.count)", file: file, line: line)
        return
    }
    var worst = 0, worstDiff: Float = -1
    for i in actual.indices {
        let d = abs(actual[i] - expected[i])
        if d.isNaN { XCTFail("\(what()): NaN at \(i) (\(actual[i]) vs \(expected[i]))", file: file, line: line); return }
        if d > worstDiff { worstDiff = d; worst = i }
    }
    if worstDiff > bound {
        XCTFail("\(what()): |Δ| = \(worstDiff) > \(bound) at \(worst) (\(actual[worst]) vs \(expected[worst]))", file: file, line: line)
    }
}
