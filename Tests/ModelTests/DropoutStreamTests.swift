// Dropout multipliers are drawn in parallel chunks and only where a pass reads them (Blocks/Dropout.swift): each
// value must still be the serial stream's draw at its index, and the generator must end where the serial one does.
import Kernels
import XCTest

@testable import Model

final class DropoutStreamTests: XCTestCase {
    func serial(_ count: Int, p: Float, seed: UInt64) -> ([Float], SplitMix64) {
        var rng = SplitMix64(seed: seed)
        let scale = 1 / (1 - p)
        let values = (0..<count).map { _ in rng.uniform() < Double(p) ? 0 : scale }
        return (values, rng)
    }

    func testParallelDrawsAreTheSerialStream() {
        let arena = ScratchArena()
        for (count, seed) in [(1, 3), (65_535, 4), (65_536, 5), (300_001, 6)] as [(Int, UInt64)] {
            let (expected, serialEnd) = serial(count, p: 0.1, seed: seed)
            var end = serialEnd
            var rng = SplitMix64(seed: seed)
            let m = dropoutMultipliers(count, p: 0.1, rng: &rng, arena: arena)!
            XCTAssertEqual(Array(UnsafeBufferPointer(start: m, count: count)), expected, "count \(count)")
            XCTAssertEqual(rng.state, end.state)
            XCTAssertEqual(rng.next(), end.next())
        }
    }

    func testOnlyTheReadRangesAreDrawnAndTheStreamStillAdvancesPastAll() {
        let arena = ScratchArena()
        let count = 200_000
        let (expected, end) = serial(count, p: 0.25, seed: 11)
        let ranges = [0..<10, 70_000..<140_001, 199_999..<200_000, 500..<500]
        var rng = SplitMix64(seed: 11)
        let m = dropoutMultipliers(count, p: 0.25, rng: &rng, arena: arena, only: ranges)!
        for r in ranges { for i in r { XCTAssertEqual(m[i], expected[i], "index \(i)") } }
        XCTAssertEqual(rng.state, end.state)
        XCTAssertNil(dropoutMultipliers(10, p: 0, rng: &rng, arena: arena))
    }
}

/// The attention probabilities' keep bits: bit i set exactly where the Float multipliers keep value i, over whole
/// buffers and over read ranges that share bytes, end in the middle of one or are empty; the stream ends as theirs.
final class DropoutBitsTests: XCTestCase {
    func testBitsAreTheMultipliersKeeps() {
        let arena = ScratchArena()
        for (count, p, only) in [
            (1, Float(0.1), nil), (13, 0.5, nil), (200_003, 0.1, nil),
            (100_000, 0.25, [3..<9, 9..<17, 40..<41, 65_530..<70_001, 5..<5, 99_999..<100_000]),
        ] as [(Int, Float, [Range<Int>]?)] {
            var a = SplitMix64(seed: UInt64(count))
            var b = a
            let m = dropoutMultipliers(count, p: p, rng: &a, arena: arena)!
            let bits = dropoutBits(count, p: p, rng: &b, arena: arena, only: only)!
            XCTAssertEqual(bits.scale, 1 / (1 - p))
            XCTAssertEqual(a.state, b.state)
            for r in only ?? [0..<count] {
                for i in r { XCTAssertEqual(bits.multiplier(i), m[i], "value \(i) of \(count)") }
                var i = r.lowerBound
                while i + 16 <= r.upperBound {
                    XCTAssertEqual(bits.multipliers16(i), Vec16((0..<16).map { m[i + $0] }), "values from \(i)")
                    i += 5
                }
            }
            XCTAssertNil(dropoutBits(count, p: 0, rng: &b, arena: arena))
        }
    }
}

/// SplitMix64.fillDropout, eight draws a step, against the loop of uniform() it replaces: at drop probabilities
/// whose 2⁵³ multiple is and is not an integer, and at the boundary itself — a draw equal to p is kept, one below
/// is dropped.
final class DropoutFillTests: XCTestCase {
    func scalar(_ g: SplitMix64, _ count: Int, p: Double, scale: Float) -> [Float] {
        var g = g
        return (0..<count).map { _ in g.uniform() < p ? 0 : scale }
    }

    func fill(_ g: SplitMix64, _ count: Int, p: Double, scale: Float) -> [Float] {
        var out = [Float](repeating: .nan, count: count)
        out.withUnsafeMutableBufferPointer { g.fillDropout($0.baseAddress!, count: count, p: p, scale: scale) }
        return out
    }

    func testEqualsTheScalarStream() {
        for (count, p) in [(1, 0.1), (7, 0.5), (8, 0.25), (9, Double(Float(0.1))), (1_001, 1e-9), (64, 0.999)] {
            let g = SplitMix64(seed: UInt64(count))
            XCTAssertEqual(fill(g, count, p: p, scale: 1.25), scalar(g, count, p: p, scale: 1.25), "\(count) at p \(p)")
        }
    }

    func testBoundaryDraw() {
        let start = SplitMix64(seed: 99)
        for j in [0, 5, 8, 13] {
            var g = start.advanced(by: j)
            let k = g.next() >> 11
            for (p, dropped) in [
                (Double(k) / 9_007_199_254_740_992, false), (Double(k + 1) / 9_007_199_254_740_992, true),
            ] {
                let out = fill(start, 16, p: p, scale: 2)
                XCTAssertEqual(out[j], dropped ? 0 : 2, "draw \(j) against p = \(p)")
                XCTAssertEqual(out, scalar(start, 16, p: p, scale: 2))
            }
        }
    }
}
