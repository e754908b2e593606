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
