// zstd files: a round trip, and damage detected as an error naming the file.
import Checkpoint
import Foundation
import TestSupport
import XCTest

final class ZstdTests: XCTestCase {
    func testRoundTripAndDamage() throws {
        let text = Array(String(repeating: "the heuristic core ", count: 500).utf8)
        let z = Zstd.compress(text)
        XCTAssertLessThan(z.count, text.count / 10)
        XCTAssertEqual(try Zstd.decompress(z), text)
        XCTAssertThrowsError(try Zstd.decompress(Array(z.dropLast(3))))
        var bad = z
        bad[bad.count / 2] ^= 0xFF
        if let out = try? Zstd.decompress(bad) { XCTAssertNotEqual(out, text) }
    }
}
