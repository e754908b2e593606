// The trace a resumed run continues.
import Checkpoint
import Foundation
import Kernels
import Model
import Optimization
import TestSupport
import Tokenizer
import XCTest

@testable import Prune

/// The trace a resumed run continues.
final class PruneTraceTests: XCTestCase {
    func step(_ k: Int) -> PruneStep {
        PruneStep(
            step: k, kl: 0.1, lagrangian: 0, expectedSparsity: 0, sampledSparsity: 0, target: 0, lambda1: 0,
            lambda2: 0, logAlpha: [1, 2])
    }

    func testTraceDropsStepsPastTheCheckpointOnResume() throws {
        let path = NSTemporaryDirectory() + "hcore-trace-\(getpid()).jsonl"
        defer { unlink(path) }
        do {
            let t = try PruneTrace(path: path, resumeStep: 0)
            for k in 0..<5 { try t.append(step(k)) }
        }
        do {
            let t = try PruneTrace(path: path, resumeStep: 3)  // the checkpoint holds steps 0–2
            try t.append(step(3))
        }
        let steps = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map {
            (try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any])["step"] as! Int
        }
        XCTAssertEqual(steps, [0, 1, 2, 3])
    }

    /// A trace must hold every step its checkpoint includes: one cut mid-line or damaged is refused with its line,
    /// not dropped with every line after it.
    func testTraceMissingAStepOfItsCheckpointIsRefused() throws {
        let path = NSTemporaryDirectory() + "hcore-trace-resume-\(getpid()).jsonl"
        defer { unlink(path) }
        do {
            let t = try PruneTrace(path: path, resumeStep: 0)
            for k in 0..<4 { try t.append(step(k)) }
        }
        let whole = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
        let lines = whole.split(separator: UInt8(ascii: "\n")).map(Array.init)
        let cut = Array(whole.dropLast(lines[3].count / 2 + 1))  // step 3's line cut in its middle
        var damagedFirst = whole
        damagedFirst[2] = UInt8(ascii: "#")
        for (what, bytes, line) in [("cut mid-line", cut, 4), ("damaged first line", damagedFirst, 1)] {
            try writeAtomically(bytes, to: path)
            XCTAssertThrowsError(try PruneTrace(path: path, resumeStep: 4), what) {
                XCTAssert("\($0)".contains("line \(line) is not step \(line - 1)'s record"), "\(what): \($0)")
            }
        }
        // A step the checkpoint does not include may be cut: it is dropped.
        try writeAtomically(cut, to: path)
        _ = try PruneTrace(path: path, resumeStep: 3)
        XCTAssertEqual(
            Array(try Data(contentsOf: URL(fileURLWithPath: path))).split(separator: UInt8(ascii: "\n")).count, 3)
    }

    /// Replay inputs and list flags are refused, with a message, when they are not what a run can use: noise
    /// outside (0, 1) or not finite, a tensor of the wrong size, a target outside [0, 1), a malformed seed list.
    func testHostileReplayInputsAndListsAreRefused() throws {
        let path = NSTemporaryDirectory() + "hcore-replay-\(getpid()).safetensors"
        defer { unlink(path) }
        for bad: Float in [.nan, 1, 0, -0.5, .infinity] {
            var w = SafetensorsWriter()
            w.add("u", shape: [2, 3], [0.5, 0.5, bad, 0.5, 0.5, 0.5])
            try w.write(to: path)
            XCTAssertThrowsError(try ReplayInputs.noise(path, units: 3, microBatches: 2), "noise value \(bad)")
        }
        var w = SafetensorsWriter()
        w.add("u", shape: [2, 3], [0.5, 0.5, 0.5, 0.5, 0.5, 0.5])
        w.add("la", shape: [4], [1, 2, .nan, 4])
        try w.write(to: path)
        XCTAssertEqual(try ReplayInputs.noise(path + ":u", units: 3, microBatches: 2).count, 2)
        XCTAssertThrowsError(try ReplayInputs.noise(path + ":u", units: 4, microBatches: 2))
        XCTAssertThrowsError(try ReplayInputs.initialLogAlpha(path + ":la", units: 4))  // not finite
        XCTAssertThrowsError(try ReplayInputs.initialLogAlpha(path + ":missing", units: 4))
        XCTAssertThrowsError(try ReplayInputs.initialLogAlpha(path + "-absent", units: 4))
        XCTAssertEqual(try PruneGrid.targets("0.3, 0.5"), [0.3, 0.5])
        for bad in ["0.3,1", "0.3,,0.5", "x", "-0.1", "nan"] { XCTAssertThrowsError(try PruneGrid.targets(bad), bad) }
        XCTAssertEqual(try PruneRuns.seedList("42-44", default: 1), [42, 43, 44])
        XCTAssertEqual(try PruneRuns.seedList("1, 5,9", default: 1), [1, 5, 9])
        for bad in ["44-42", "1,,2", "a-b", "-3", "0-18446744073709551615"] {
            XCTAssertThrowsError(try PruneRuns.seedList(bad, default: 1), bad)
        }
    }
}
