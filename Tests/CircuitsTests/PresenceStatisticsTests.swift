// Presence vs an OOD metric over the matching subnetworks: a unit whose presence drives the metric stands out
import Checkpoint
import Eval
import Foundation
import Kernels
import Model
import Store
import TestSupport
import Tokenizer
import XCTest

@testable import Circuits

/// Presence vs an OOD metric over the matching subnetworks: a unit whose presence drives the metric stands out
/// (large partial r, small permutation p, Benjamini–Hochberg q ≥ p); a unit whose presence is independent does
/// not; q is monotone in p.
final class PresenceStatisticsTests: XCTestCase {
    func testDrivingUnitStandsOut() {
        var rng = SplitMix64(seed: 4)
        let subs = (0..<16).map { i -> StoredSubnetwork in
            let mask: [UInt8] = [UInt8(i % 2), UInt8(rng.next() % 2), 1, UInt8(rng.next() % 2), 1, 0, 1]
            let metric = 0.6 + 0.2 * Double(mask[0]) + 0.01 * rng.uniform()
            return StoredSubnetwork(
                name: "s\(i)", mask: mask, meta: .object([("eval/hans/plotted", .float(metric))]))
        }
        XCTAssertEqual(defaultOODMetric(subs), "eval/hans/plotted")
        let stats = presenceStatistics(subs, metric: "eval/hans/plotted", permutations: 2000, seed: 1)
        let byUnit = Dictionary(uniqueKeysWithValues: stats.map { ($0.unit, $0) })
        XCTAssertNil(byUnit[2])  // kept by all: its presence does not vary
        XCTAssertGreaterThan(byUnit[0]!.r, 0.9)
        XCTAssertLessThan(byUnit[0]!.q, 0.01)
        XCTAssertGreaterThan(byUnit[1]!.p, 0.05)
        for s in stats { XCTAssertGreaterThanOrEqual(s.q, s.p - 1e-12) }
        let sorted = stats.sorted { $0.p < $1.p }
        for (a, b) in zip(sorted, sorted.dropFirst()) { XCTAssertLessThanOrEqual(a.q, b.q + 1e-12) }
    }
}
