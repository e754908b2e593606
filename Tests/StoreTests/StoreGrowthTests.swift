// The incremental index (delta footers) and automatic compaction: many small commits stay small and fast,
import Checkpoint
import Foundation
import Store
import TestSupport
import XCTest

/// The incremental index (delta footers) and automatic compaction: many small commits stay small and fast,
/// and any interleaving of adds, removals, metadata updates and activation sets reads back exactly.
final class StoreGrowthTests: XCTestCase {
    let layout = StoreLayout(layers: 12, heads: 12)

    /// 1,000 one-subnetwork adds to a bert-base store (the pattern of a job committing as it goes). The
    /// 10,000-add figure is in docs/store-format.md; its speed is `hcore-bench store-adds`.
    func testThousandSingleAddsStaySmall() throws {
        let path = tempPath("single-adds.hcs")
        let s = try SubnetworkStore.create(path: path, fingerprint: "hc1-0000000000000002", layout: layout)
        let subs = coreSubnetworks(1000, layout: layout, seed: 5)
        for sub in subs { try s.add([sub]) }
        let r = try SubnetworkStore.open(path: path)
        XCTAssertEqual(r.subnetworks.map(\.name), subs.map(\.name))
        XCTAssertEqual(r.subnetworks.map(\.mask), subs.map(\.mask))
        XCTAssertEqual(r.subnetworks.map(\.meta.compact), subs.map(\.meta.compact))
        print("store: 1000 single adds → \(r.fileSize) bytes")
        XCTAssertLessThan(r.fileSize, 200_000, "each add should cost what it adds, not what the store holds")
    }

    /// A name removed and added again, through delta footers: the updates made before its removal are gone, the
    /// later ones kept, and the other subnetworks untouched — read back by another process.
    func testRemovedNameAddedAgainKeepsOnlyItsLaterUpdates() throws {
        let path = tempPath("readded.hcs")
        let small = StoreLayout(layers: 2, heads: 3)
        let s = try SubnetworkStore.create(path: path, fingerprint: "hc1-0000000000000004", layout: small)
        let mask: [UInt8] = [1, 0, 1, 1, 1, 0, 1, 1]
        try s.add([StoredSubnetwork(name: "a", mask: mask), StoredSubnetwork(name: "b", mask: mask)])
        for round in 0..<3 {
            try s.updateMeta([("a", [("before", .int(round))]), ("b", [("b\(round)", .int(round))])])
            try s.remove(["a"])
            try s.add([StoredSubnetwork(name: "a", mask: mask.reversed())])
            try s.updateMeta([("a", [("after", .int(round))])])
        }
        let r = try SubnetworkStore.open(path: path)
        XCTAssertEqual(r.subnetworks.map(\.name), ["b", "a"])
        XCTAssertEqual(r.subnetworks[1].meta.compact, #"{"after":2}"#)
        XCTAssertEqual(r.subnetworks[1].mask, mask.reversed())
        XCTAssertEqual(r.subnetworks[0].meta.compact, #"{"b0":0,"b1":1,"b2":2}"#)
    }

    /// 400 random operations, reopening at random points (another process's view), against a plain model
    /// of the expected state.
    func testRandomInterleavingsReadBackExactly() throws {
        let path = tempPath("interleaved.hcs")
        let small = StoreLayout(layers: 2, heads: 3)
        var s = try SubnetworkStore.create(path: path, fingerprint: "hc1-0000000000000003", layout: small)
        var rng = SeededRNG(17)
        var expected: [(name: String, mask: [UInt8], meta: JSONValue)] = []
        var sets: [String: [UInt8]] = [:]
        var next = 0
        for step in 0..<400 {
            // (A `where` clause binds only the last pattern of a case, so the guards are spelled out.)
            let roll = rng.next() % 10
            switch roll {
            case 0...4:
                let subs = coreSubnetworks(1 + Int(rng.next() % 3), layout: small, seed: rng.next()).map {
                    sub -> StoredSubnetwork in
                    defer { next += 1 }
                    return StoredSubnetwork(name: "n\(next)", mask: sub.mask, meta: .object([("step", .int(step))]))
                }
                try s.add(subs)
                expected += subs.map { ($0.name, $0.mask, $0.meta) }
            case 5...6 where !expected.isEmpty:
                let victim = expected[Int(rng.next() % UInt64(expected.count))].name
                try s.remove([victim])
                expected.removeAll { $0.name == victim }
            case 7...8 where !expected.isEmpty:
                let i = Int(rng.next() % UInt64(expected.count))
                try s.updateMeta([(expected[i].name, [("acc", .int(step))])])
                expected[i].meta = expected[i].meta.merging([("acc", .int(step))])
            default:
                let name = "set\(rng.next() % 3)"
                let bytes = (0..<8).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
                try s.addActivations(name: name, safetensors: bytes)
                sets[name] = bytes
            }
            if rng.next() % 7 == 0 { s = try SubnetworkStore.open(path: path) }
            XCTAssertEqual(s.subnetworks.map(\.name), expected.map(\.name), "step \(step)")
        }
        let r = try SubnetworkStore.open(path: path)
        XCTAssertEqual(r.subnetworks.map(\.name), expected.map(\.name))
        XCTAssertEqual(r.subnetworks.map(\.mask), expected.map(\.mask))
        XCTAssertEqual(r.subnetworks.map(\.meta.compact), expected.map(\.meta.compact))
        for (name, bytes) in sets { XCTAssertEqual(try r.activationSet(name), bytes) }
    }
}
