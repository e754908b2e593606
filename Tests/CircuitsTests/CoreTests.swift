// Keep frequencies and the core of a set of subnetworks against a direct count.
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

final class CoreTests: XCTestCase {
    func testFrequenciesEqualADirectCount() {
        let layout = StoreLayout(layers: 6, heads: 12)
        var rng = SeededRNG(20)
        let subs = (0..<25).map { i -> StoredSubnetwork in
            var mask = (0..<78).map { _ in UInt8.random(in: 0...1, using: &rng) }
            for u in [3, 17, 40, 75] { mask[u] = 1 }  // kept by everyone: the core
            return StoredSubnetwork(
                name: "s\(i)", mask: mask, meta: .object([("hans", .float(Double(mask[5]) + 0.1 * Double(i % 3)))]))
        }
        let report = findCore(subs, layout: layout, fraction: 1.0, metric: "hans")
        for u in 0..<78 {
            let direct = subs.filter { $0.mask[u] == 1 }.count
            XCTAssertEqual(report.keepFrequency[u], Double(direct) / 25, accuracy: 1e-12)
        }
        XCTAssertTrue(Set([3, 17, 40, 75]).isSubset(of: Set(report.core)))
        XCTAssertEqual(Set(report.core), Set((0..<78).filter { u in subs.allSatisfy { $0.mask[u] == 1 } }))
        XCTAssertEqual(report.name(17).description, "a1.h5")
        XCTAssertEqual(report.name(75).description, "a3.mlp")
        XCTAssertNil(report.correlation[3])  // constant presence
        XCTAssertGreaterThan(report.correlation[5] ?? 0, 0.9)  // the metric follows unit 5
    }
}
