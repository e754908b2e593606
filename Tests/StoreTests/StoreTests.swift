// The subnetwork store (docs/store-format.md): exact round trips, compact mask storage, and damage:
// every byte flipped and every truncation end in a clean error or a committed state — never a wrong mask.
import Checkpoint
import Foundation
import Store
import TestSupport
import XCTest

final class StoreTests: XCTestCase {
    let layout = StoreLayout(layers: 12, heads: 12)

    func testRoundTripIsExact() throws {
        let path = tempPath("roundtrip.hcs")
        let s = try SubnetworkStore.create(path: path, fingerprint: "hc1-0123456789abcdef", layout: layout)
        let subs = coreSubnetworks(20, layout: layout, seed: 1, alphas: true)
        try s.add(subs)
        try s.updateMeta([("sub-3", [("hans_accuracy", 0.61), ("note", "é ✓ \"quoted\"")])])
        try s.addActivations(name: "hans", safetensors: [1, 2, 3, 255])
        let r = try SubnetworkStore.open(path: path)
        XCTAssertNil(r.recoveryNote)
        XCTAssertEqual(r.fingerprint, "hc1-0123456789abcdef")
        XCTAssertEqual(r.layout, layout)
        XCTAssertEqual(r.subnetworks.map(\.name), subs.map(\.name))
        for (a, b) in zip(r.subnetworks, subs) {
            XCTAssertEqual(a.mask, b.mask)
            XCTAssertEqual(a.logAlpha!.map(\.bitPattern), b.logAlpha!.map(\.bitPattern))
        }
        XCTAssertEqual(
            r.subnetworks[3].meta.compact,
            #"{"seed":3,"target_sparsity":0.5,"tags":["core"],"hans_accuracy":0.61,"note":"é ✓ \"quoted\""}"#)
        XCTAssertEqual(try r.activationSet("hans"), [1, 2, 3, 255])
        try r.remove(["sub-0", "sub-7"])
        let r2 = try SubnetworkStore.open(path: path)
        XCTAssertEqual(r2.subnetworks.count, 18)
        XCTAssertFalse(r2.subnetworks.contains { $0.name == "sub-7" })
        XCTAssertThrowsError(try r2.add([subs[1]])) { XCTAssert("\($0)".contains("already exists")) }
        let before = try Data(contentsOf: URL(fileURLWithPath: path)).count
        try r2.compact()
        let after = try SubnetworkStore.open(path: path)
        XCTAssertLessThan(try Data(contentsOf: URL(fileURLWithPath: path)).count, before)
        XCTAssertEqual(after.subnetworks.map(\.mask), r2.subnetworks.map(\.mask))
        XCTAssertEqual(after.subnetworks.map(\.meta.compact), r2.subnetworks.map(\.meta.compact))
        XCTAssertEqual(try after.activationSet("hans"), [1, 2, 3, 255])
    }

    func testThousandBertBaseSubnetworksFitInSixteenBytesEach() throws {
        let path = tempPath("thousand.hcs")
        let s = try SubnetworkStore.create(path: path, fingerprint: "hc1-0000000000000001", layout: layout)
        let subs = coreSubnetworks(1000, layout: layout, seed: 2)
        try s.add(subs)
        let perSubnetwork = Double(s.maskPayloadBytes) / 1000
        print(
            "store: 1000 subnetworks × 156 units: \(s.maskPayloadBytes) bytes of mask data (\(perSubnetwork) per subnetwork), file \(s.fileSize) bytes"
        )
        XCTAssertLessThanOrEqual(perSubnetwork, 16)
        // Its speed is `hcore-bench store-open` (BENCHMARKS.md), not a test.
        let r = try SubnetworkStore.open(path: path)
        let listing = r.subnetworks.map { "\($0.name) \($0.mask.reduce(0) { $0 + Int($1) })" }
        XCTAssertEqual(listing.count, 1000)
        XCTAssertEqual(r.subnetworks.map(\.mask), subs.map(\.mask))
        XCTAssertEqual(r.maskPayloadBytes, s.maskPayloadBytes)
    }

    /// A small store with three commits after creation; returns the path, the file length after each
    /// commit and the (name, mask, meta) state after each.
    func smallStore() throws -> (String, [Int], [[String]]) {
        let path = tempPath("small.hcs")
        let small = StoreLayout(layers: 2, heads: 3)
        let s = try SubnetworkStore.create(path: path, fingerprint: "hc1-00000000000000ff", layout: small)
        func state() -> [String] {
            s.subnetworks.map { "\($0.name) \($0.mask) \($0.logAlpha ?? []) \($0.meta.compact)" }
        }
        var lengths = [s.fileSize]
        var states = [state()]
        try s.add(coreSubnetworks(3, layout: small, seed: 3, alphas: true))
        lengths.append(s.fileSize)
        states.append(state())
        try s.updateMeta([("sub-1", [("acc", 0.5)])])
        lengths.append(s.fileSize)
        states.append(state())
        try s.add([StoredSubnetwork(name: "late", mask: [1, 0, 1, 1, 0, 1, 0, 1])])
        lengths.append(s.fileSize)
        states.append(state())
        return (path, lengths, states)
    }

    func describe(_ s: SubnetworkStore) -> [String] {
        s.subnetworks.map { "\($0.name) \($0.mask) \($0.logAlpha ?? []) \($0.meta.compact)" }
    }

    func testEveryTruncationIsAnErrorOrACommittedState() throws {
        let (path, lengths, states) = try smallStore()
        let full = try Data(contentsOf: URL(fileURLWithPath: path))
        XCTAssertEqual(full.count, lengths.last)
        let cut = tempPath("cut.hcs")
        var recovered = 0
        var errors = 0
        for n in 0..<full.count {
            try full.prefix(n).write(to: URL(fileURLWithPath: cut))
            guard let s = try? SubnetworkStore.open(path: cut) else {
                errors += 1
                XCTAssertLessThan(n, lengths[0], "a cut at \(n) after the first commit must be readable")
                continue
            }
            // The state is that of the last commit that fits in n bytes.
            let k = lengths.lastIndex { $0 <= n }!
            XCTAssertEqual(describe(s), states[k], "cut at \(n)")
            if n != lengths[k] {
                XCTAssertNotNil(s.recoveryNote)
                recovered += 1
            }
        }
        XCTAssertGreaterThan(recovered, 0)
        XCTAssertGreaterThan(errors, 0)
    }

    func testEveryByteFlipIsAnErrorOrTheRightState() throws {
        let (path, _, states) = try smallStore()
        let full = try Data(contentsOf: URL(fileURLWithPath: path))
        let flipped = tempPath("flipped.hcs")
        for i in 0..<full.count {
            var d = full
            d[i] ^= 0x5A
            try d.write(to: URL(fileURLWithPath: flipped))
            do {
                let s = try SubnetworkStore.open(path: flipped)
                // Only bytes no commit refers to any more (superseded footers/commits) may go unnoticed.
                XCTAssertEqual(describe(s), states.last!, "flip at byte \(i) gave a different state")
                // The file header and the final commit are always read: a flip there must be caught.
                XCTAssert(
                    i >= 16 && i < full.count - 64, "flip at byte \(i) in the header or final commit went unnoticed")
            } catch {
                XCTAssert(error is CheckpointError, "\(error)")
                XCTAssert("\(error)".contains("store"), "\(error)")
            }
        }
    }

    func testFullDiskMidAppendLeavesPreviousState() throws {
        let path = tempPath("fulldisk.hcs")
        let s = try SubnetworkStore.create(path: path, fingerprint: "hc1-00000000000000aa", layout: layout)
        try s.add(coreSubnetworks(5, layout: layout, seed: 4))
        let before = describe(try SubnetworkStore.open(path: path))
        let full = try SubnetworkStore.open(path: path, faults: .init(failWritesAfterBytes: 100))
        XCTAssertThrowsError(try full.add([StoredSubnetwork(name: "x", mask: [UInt8](repeating: 1, count: 156))])) {
            XCTAssert("\($0)".contains("disk full"))
        }
        XCTAssertEqual(describe(full), before)
        XCTAssertEqual(describe(try SubnetworkStore.open(path: path)), before)
        // The store the failed writer left is usable by the next.
        try s.add([StoredSubnetwork(name: "x", mask: [UInt8](repeating: 1, count: 156))])
        XCTAssertEqual(try SubnetworkStore.open(path: path).subnetworks.count, 6)
    }

    /// The writer stopped at each of its steps as if its process died there — after a partial write, after
    /// the whole write (not yet fsync'ed), after the fsync, and a compaction before and after its rename:
    /// reopening gives the state before the transaction or after it, never a torn one, and reports a torn
    /// tail; the next writer (a fresh open, as after a restart) goes on from there, and nothing is lost.
    func testWriterStoppedAtEveryStepLosesNoCommit() throws {
        let cases: [(SubnetworkStore.WriterStep, partial: Bool)] = [
            (.written, true), (.written, false), (.synced, false),
            (.compactionWritten, false), (.compactionRenamed, false),
        ]
        for (step, partial) in cases {
            let label = "\(step)\(partial ? " (partial write)" : "")"
            let path = tempPath("crash-\(step.rawValue)-\(partial).hcs")
            let setup = try SubnetworkStore.create(path: path, fingerprint: "hc1-00000000000000aa", layout: layout)
            try setup.add(coreSubnetworks(5, layout: layout, seed: 9))
            let before = describe(try SubnetworkStore.open(path: path))
            let compacting = step == .compactionWritten || step == .compactionRenamed
            let s = try SubnetworkStore.open(
                path: path, faults: .init(failWritesAfterBytes: partial ? 100 : nil, crashAt: step))
            XCTAssertThrowsError(
                try compacting
                    ? s.compact()
                    : s.add([StoredSubnetwork(name: "late", mask: [UInt8](repeating: 1, count: layout.unitCount))]),
                label
            ) {
                XCTAssert($0 is SubnetworkStore.SimulatedCrash, "\(label): \($0)")
            }
            let reopened = try SubnetworkStore.open(path: path)
            let names = reopened.subnetworks.map(\.name)
            let committed = !compacting && !partial  // the whole transaction reached the file
            XCTAssertEqual(names, (0..<5).map { "sub-\($0)" } + (committed ? ["late"] : []), label)
            XCTAssertTrue(
                describe(reopened).prefix(5).elementsEqual(before), "\(label): the earlier commits are intact")
            XCTAssertEqual(
                reopened.recoveryNote != nil, partial, "\(label): a torn tail, and only a torn tail, is reported")
            XCTAssertEqual(
                FileManager.default.fileExists(atPath: path + ".compact-\(getpid())"), step == .compactionWritten,
                "\(label): a crash before the rename leaves the new file beside the store, nothing else")
            try reopened.add([StoredSubnetwork(name: "next", mask: [UInt8](repeating: 0, count: layout.unitCount))])
            let final = try SubnetworkStore.open(path: path)
            XCTAssertEqual(final.subnetworks.map(\.name), names + ["next"], label)
            XCTAssertNil(final.recoveryNote, label)
            try final.compact()  // also removes a compaction file this process left behind
            XCTAssertFalse(FileManager.default.fileExists(atPath: path + ".compact-\(getpid())"), label)
            XCTAssertTrue(describe(try SubnetworkStore.open(path: path)) == describe(final), label)
        }
    }

    func testBadInputRefused() throws {
        let path = tempPath("bad.hcs")
        let s = try SubnetworkStore.create(path: path, fingerprint: "hc1-00000000000000bb", layout: layout)
        XCTAssertThrowsError(try s.add([StoredSubnetwork(name: "short", mask: [1, 0])]))
        XCTAssertThrowsError(try s.add([StoredSubnetwork(name: "", mask: [UInt8](repeating: 1, count: 156))]))
        XCTAssertThrowsError(try s.add([StoredSubnetwork(name: "two", mask: [UInt8](repeating: 2, count: 156))]))
        XCTAssertThrowsError(try SubnetworkStore.create(path: path, fingerprint: "x", layout: layout)) {
            XCTAssert("\($0)".contains("already exists"))
        }
        XCTAssertThrowsError(try SubnetworkStore.open(path: fixtures + "/models/tiny-bert/config.json")) {
            XCTAssert("\($0)".contains("not an hcore store"))
        }
    }

    /// A JSON-lines file of subnetworks: a "created" in the meta is kept, the others get the time of reading;
    /// a bad line is named with its line number.
    func testJSONLinesKeepTheirCreatedAndStampTheRest() throws {
        let small = StoreLayout(layers: 2, heads: 3)
        let line = { (name: String, meta: String) in
            "{\"name\": \"\(name)\", \"heads\": [[1, 0, 1], [0, 1, 1]], \"mlps\": [1, 0]\(meta)}"
        }
        let text = [
            line("a", ", \"meta\": {\"created\": \"2024-01-01T00:00:00Z\"}"), line("b", ""), "",
            line("c", ", \"meta\": {}"),
        ].joined(separator: "\n")
        let subs = try SubnetworkStore.subnetworks(
            jsonlBytes: Array(text.utf8), path: "subs.jsonl", layout: small, threshold: nil)
        XCTAssertEqual(subs.map(\.name), ["a", "b", "c"])
        XCTAssertEqual(subs[0].meta.get("created")?.stringValue, "2024-01-01T00:00:00Z")
        let stamp = try XCTUnwrap(subs[1].meta.get("created")?.stringValue)
        XCTAssertNotEqual(stamp, "2024-01-01T00:00:00Z")
        XCTAssertEqual(subs[2].meta.get("created")?.stringValue, stamp)
        XCTAssertEqual(subs[1].mask, [1, 0, 1, 0, 1, 1, 1, 0])
        let bad = text + "\n" + line("d", ", \"meta\": 3")
        XCTAssertThrowsError(
            try SubnetworkStore.subnetworks(
                jsonlBytes: Array(bad.utf8), path: "subs.jsonl", layout: small, threshold: nil)
        ) {
            XCTAssertTrue("\($0)".contains("subs.jsonl:5"), "\($0)")
        }
    }
}
