// Unit names as the reference spells them, their store order, and a mask's sparsity — against values written by hand.
import Model
import TestSupport
import XCTest

final class PrunableUnitTests: XCTestCase {
    func testUnitSpellingsParseAndPrintAsTheReference() {
        XCTAssertEqual(PrunableUnit("a4.h3"), .head(4, 3))
        XCTAssertEqual(PrunableUnit("a2.mlp"), .mlp(2))
        for s in ["l4.h3", "L4H3", "4.3", "4:3", " a4.h3 "] { XCTAssertEqual(PrunableUnit(s), .head(4, 3), s) }
        for s in ["m2", "mlp2", "l2.mlp"] { XCTAssertEqual(PrunableUnit(s), .mlp(2), s) }
        for s in ["", "a", "a4", "a-1.h2", "a4.h", "x4.h3", "a4.h3.h2", "mlp"] { XCTAssertNil(PrunableUnit(s), s) }
        XCTAssertEqual(PrunableUnit.head(4, 3).description, "a4.h3")
        XCTAssertEqual(PrunableUnit.mlp(2).description, "a2.mlp")
    }

    func testUnitStoreOrder() {
        // 2 layers × 3 heads: indices 0…5 are heads layer-major, 6 and 7 the MLPs.
        let expected: [PrunableUnit] = [
            .head(0, 0), .head(0, 1), .head(0, 2), .head(1, 0), .head(1, 1), .head(1, 2), .mlp(0), .mlp(1),
        ]
        XCTAssertEqual((0..<8).map { PrunableUnit(index: $0, layers: 2, heads: 3) }, expected)
        XCTAssertEqual(expected.map { $0.index(layers: 2, heads: 3) }, Array(0..<8))
        var rng = SeededRNG(5)
        XCTAssertEqual(expected.shuffled(using: &rng).sorted(), expected)
    }

    func testMaskSparsity() {
        let m = MaskValues(heads: [[1, 0, 1], [0, 0, 1]], mlps: [1, 0])
        XCTAssertEqual(m.sparsity, 4.0 / 8.0)
    }
}
