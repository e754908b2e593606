// The reference eval scripts' unit forcing and threshold sweep (scripts/eval/eval-*-pruned-model.py).
import Checkpoint
import Eval
import Foundation
import Model
import Store
import XCTest

final class EvalSelectionTests: XCTestCase {
    let layout = StoreLayout(layers: 2, heads: 4)

    /// Forcing sets log α to ±10 before the deterministic rule, so the rule's count of zeros changes: with layer 0's
    /// log α [−2.2, 2.1, 1.6, −1.5] the rule zeroes one head (h0) and keeps h3 at 0.142; forcing h0 in leaves
    /// the count at one, so h3 — which nobody forced — is zeroed. Expected values from the reference's formulas
    /// evaluated separately (q, k = round(N − Σ(1 − q)), soft = σ(0.8·log α / T)).
    func testForcingChangesWhichOtherUnitsTheRuleZeroes() throws {
        let la: [Float] = [-2.2, 2.1, 1.6, -1.5, 3, 3, 3, 3, 3, 3]
        let sub = StoredSubnetwork(
            name: "s", mask: [0, 1, 1, 0, 1, 1, 1, 1, 1, 1], logAlpha: la, meta: .object([("threshold", .float(0.5))]))
        let plain = try EvalTarget(sub, index: 0, layout: layout, mode: .soft, threshold: nil)
        assertClose(plain.masks!.heads[0], [0, 0.926, 0.872, 0.142])
        let forcing = try UnitForcing(include: ["a0.h0"], exclude: [], layers: 2, heads: 4)
        let forced = try EvalTarget(sub, index: 0, layout: layout, mode: .soft, threshold: nil, forcing: forcing)
        assertClose(forced.masks!.heads[0], [1, 0.926, 0.872, 0])
        // Binary mode re-derives the masks from the forced log α at the stored threshold (0.5: h3 stays out).
        let binary = try EvalTarget(sub, index: 0, layout: layout, mode: .binary, threshold: nil, forcing: forcing)
        XCTAssertEqual(binary.masks!.heads[0], [1, 1, 1, 0])
        // Without log α the forced unit is simply set.
        let bare = StoredSubnetwork(name: "b", mask: [0, 1, 1, 0, 1, 1, 1, 1, 1, 0])
        let excluded = try EvalTarget(
            bare, index: 0, layout: layout, mode: .binary, threshold: nil,
            forcing: try UnitForcing(include: ["a1.mlp"], exclude: ["a0.h1"], layers: 2, heads: 4))
        XCTAssertEqual(excluded.masks!.heads[0], [0, 0, 1, 0])
        XCTAssertEqual(excluded.masks!.mlps, [1, 1])
        XCTAssertThrowsError(try UnitForcing(include: ["a2.h0"], exclude: [], layers: 2, heads: 4))
        XCTAssertThrowsError(try UnitForcing(include: ["a0.h1"], exclude: ["a0.h1"], layers: 2, heads: 4))
    }

    /// numpy.arange(0, 1, S), as the reference's sweep.
    func testThresholdSweep() throws {
        XCTAssertEqual(try thresholdSweep(stepSize: 0.25), [0, 0.25, 0.5, 0.75])
        XCTAssertEqual(try thresholdSweep(stepSize: 0.3).count, 4)
        XCTAssertThrowsError(try thresholdSweep(stepSize: 0))
        XCTAssertThrowsError(try thresholdSweep(stepSize: 1))
    }

    /// `eval --checkpoints`: only checkpoint-STEP folders, in step order; none, or no folder, is an error.
    func testCheckpointFolders() throws {
        let dir = NSTemporaryDirectory() + "hcore-ckpts-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        XCTAssertThrowsError(try checkpointFolders(dir))
        XCTAssertThrowsError(try checkpointFolders(dir + "/absent"))
        for n in ["checkpoint-500", "checkpoint-20", "checkpoint-x", "checkpoint--3", "other"] {
            try FileManager.default.createDirectory(atPath: dir + "/" + n, withIntermediateDirectories: true)
        }
        XCTAssertEqual(try checkpointFolders(dir).map(\.step), [20, 500])
        // One step spelt twice is refused, not read twice.
        try FileManager.default.createDirectory(atPath: dir + "/checkpoint-020", withIntermediateDirectories: true)
        XCTAssertThrowsError(try checkpointFolders(dir)) { XCTAssert("\($0)".contains("step 20 twice"), "\($0)") }
    }

    func assertClose(_ a: [Float], _ b: [Float], line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, line: line)
        for (x, y) in zip(a, b) { XCTAssertEqual(x, y, accuracy: 1e-3, "\(a) vs \(b)", line: line) }
    }

    /// Shard i of n takes the items at positions i−1, i−1+n, …: the shards of 8 items into 3 are written out
    /// by hand, and together they hold every item once.
    func testShardShareTakesEveryNthItem() throws {
        let items = Array(10..<18)
        let shards = try (1...3).map { try XCTUnwrap(ShardSpec.parse("\($0)/3", environment: [:])).share(items) }
        XCTAssertEqual(shards, [[10, 13, 16], [11, 14, 17], [12, 15]])
        XCTAssertEqual(try XCTUnwrap(ShardSpec.parse("1/1", environment: [:])).share(items), items)
        XCTAssertEqual(try XCTUnwrap(ShardSpec.parse("3/3", environment: [:])).share([1]), [])
    }
}
