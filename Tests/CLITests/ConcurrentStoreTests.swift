// Several processes sharing one store, as a cluster job does: parallel `store add`s and a sharded
// `eval --write-back`. Every acknowledged write must be in the store afterwards, every round.
import Checkpoint
import Foundation
import Store
import TestSupport
import XCTest

/// Starts every command at once and waits for all; returns their exit codes and stderr.
func runConcurrently(_ commands: [[String]]) throws -> [(code: Int32, err: String)] {
    let exe = try hcoreExecutable()
    let running: [(Process, Pipe)] = try commands.map { args in
        let p = Process()
        let e = Pipe()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = args
        p.currentDirectoryURL = URL(fileURLWithPath: repo)
        p.standardOutput = FileHandle.nullDevice
        p.standardError = e
        try p.run()
        return (p, e)
    }
    return running.map { p, e in
        let err = e.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: err, as: UTF8.self))
    }
}

final class ConcurrentStoreTests: XCTestCase {
    let minilm = repo + "/Tests/Fixtures/models/minilm-nli"

    /// 4 processes × 50 single-subnetwork `store add`s on one store (each process adds its 50 one after the
    /// other, the four at once), 10 rounds: all 200 subnetworks every time, and a store that verifies.
    func testFourWritersLoseNothing() throws {
        let mask = scratch("concurrent-mask.json")
        let heads = (0..<6).map { l in (0..<12).map { h in (l + h) % 3 == 0 ? 0 : 1 } }
        try String(
            decoding: try JSONSerialization.data(withJSONObject: ["heads": heads, "mlps": [1, 1, 0, 1, 1, 1]]),
            as: UTF8.self
        )
        .write(toFile: mask, atomically: true, encoding: .utf8)
        for round in 0..<10 {
            let store = scratch("concurrent-\(round).hcs")
            XCTAssertEqual(try hcore(["store", "create", store, "--model", minilm]).code, 0)
            // Each "writer" is a shell loop of 50 adds, so the four loops interleave their transactions.
            let exe = try hcoreExecutable()
            let loops = (0..<4).map { w in
                (0..<50).map { i in
                    "\(exe) store add \(store) --mask \(mask) --name w\(w)-\(i) || exit 1"
                }.joined(separator: "; ")
            }
            let shells: [Process] = try loops.map { script in
                let p = Process()
                p.executableURL = URL(fileURLWithPath: "/bin/sh")
                p.arguments = ["-c", script]
                p.standardOutput = FileHandle.nullDevice
                p.standardError = FileHandle.nullDevice
                try p.run()
                return p
            }
            for p in shells {
                p.waitUntilExit()
                XCTAssertEqual(p.terminationStatus, 0, "round \(round): a writer failed")
            }
            let s = try SubnetworkStore.open(path: store)
            XCTAssertEqual(s.subnetworks.count, 200, "round \(round)")
            XCTAssertEqual(Set(s.subnetworks.map(\.name)).count, 200)
            XCTAssertNil(s.recoveryNote, "round \(round)")
            XCTAssertEqual(try hcore(["store", "verify", store]).code, 0)
        }
    }

    /// 8 concurrent `eval --shard i/8 --write-back` on one store, 10 rounds: every subnetwork ends with the
    /// metrics its shard computed.
    func testShardedWriteBackKeepsEveryShard() throws {
        let data = scratch("writeback.jsonl")
        let pairs = (0..<24).map { i in
            "{\"text\": \"The doctor near the actor \(i) saw the judge.\", \"text_pair\": \"The doctor saw the judge.\", \"label\": \"entailment\"}"
        }
        try (pairs.joined(separator: "\n") + "\n").write(toFile: data, atomically: true, encoding: .utf8)
        for round in 0..<10 {
            let store = try makeTestStore("writeback-\(round).hcs", n: 16)
            let results = try runConcurrently(
                (1...8).map { i in
                    ["eval", "--model", minilm, "--store", store, "--data", data, "--shard", "\(i)/8", "--write-back"]
                })
            for (i, r) in results.enumerated() { XCTAssertEqual(r.code, 0, "round \(round) shard \(i + 1): \(r.err)") }
            let s = try SubnetworkStore.open(path: store)
            XCTAssertEqual(s.subnetworks.count, 16)
            for sub in s.subnetworks {
                XCTAssertNotNil(
                    sub.meta.get("eval/writeback")?.doubleValue, "round \(round): \(sub.name) lost its shard's metrics")
            }
        }
    }
}
