// Subnetwork plans gather packed weights directly (whole panels, single lanes, input columns) and fold
import TestSupport
import XCTest

@testable import Kernels

/// Subnetwork plans gather packed weights directly (whole panels, single lanes, input columns) and fold
/// pruned columns into a bias: each against the plain [n, k] weight.
final class GatherTests: XCTestCase {
    func testGathersAgainstPlainWeight() {
        var rng = SeededRNG(31)
        let nr = gemmNR
        for (n, k) in [(3 * nr, 19), (2 * nr + 7, 33), (5, 8)] {
            let w = rng.floats(n * k)
            let b = rng.floats(n)
            let packed = PackedLinear(weight: w, bias: b, n: n, k: k)
            // Rows: a whole aligned panel (block copy when n allows), a shuffled set, and a single row.
            var rowSets: [[Int]] = [[n - 1], Array(stride(from: 0, to: n, by: 2)).reversed()]
            if n >= 2 * nr { rowSets.append(Array(nr..<(2 * nr)) + [0, 3]) }
            for rows in rowSets {
                let g = packed.gatherRows(rows)
                XCTAssertEqual(g.n, rows.count)
                XCTAssertEqual(
                    g.unpacked(), rows.flatMap { r in w[(r * k)..<((r + 1) * k)] }, "rows \(rows.prefix(4))…")
                XCTAssertEqual(g.biasArray!, rows.map { b[$0] })
                for kk in 0..<k {
                    for j in g.n..<(g.panelCount * nr) {
                        XCTAssertEqual(g.panels[(j / nr) * k * nr + kk * nr + j % nr], 0)
                    }
                }
            }
            let cols = [k - 1, 0, k / 2]
            let gc = packed.gatherColumns(cols, bias: nil)
            XCTAssertEqual(gc.unpacked(), (0..<n).flatMap { r in cols.map { w[r * k + $0] } })
            XCTAssertEqual(gc.biasArray!, b)
            var acc = [Double](repeating: 1, count: n)
            packed.accumulateColumns(cols, times: [0.5, -2, 3], into: &acc)
            for r in 0..<n {
                var want = 1.0
                for (c, a) in zip(cols, [0.5, -2, 3]) { want += Double(w[r * k + c]) * a }
                XCTAssertEqual(acc[r], want, accuracy: 1e-12)
            }
        }
    }
}
