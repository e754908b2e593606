// Resume state is validated, never trusted: a checkpoint whose fields do not fit the run, whose bytes were
// damaged or which belongs to another run is refused with the file named — where it used to trap on resume.
// (The trace's side is in PruneTraceTests.)
import Checkpoint
import Foundation
import Kernels
import Model
import Optimization
import TestSupport
import Tokenizer
import XCTest

@testable import Prune

final class ResumeStateTests: XCTestCase {
    /// A short run of tiny-bert on 40 HANS pairs, and its checkpoint at step 3.
    func shortRun() throws -> (BertModel, [Encoding], MeanActivations, PruneConfig, PruneState) {
        let folder = repositoryRoot.path + "/Tests/Fixtures/models/tiny-bert"
        let model = try BertModel.load(folder: folder)
        let tok = try BertTokenizer.load(folder: folder)
        let text = String(
            decoding: try readDataFile(repositoryRoot.path + "/data/hans/heuristics_train_set.txt.zst"), as: UTF8.self)
        let enc = try text.split(separator: "\n").dropFirst().prefix(40).map {
            let f = $0.split(separator: "\t", omittingEmptySubsequences: false)
            return try tok.encode(String(f[5]), pair: String(f[6]), maxLength: 32)
        }
        let acc = ActivationAccumulator(model: model)
        _ = try model.encode(TokenBatch(enc), observer: acc)
        var c = PruneConfig()
        (c.targetSparsity, c.sparsityWarmupSteps, c.maxSteps, c.batchSize, c.dropout) = (0.3, 3, 6, 8, 0)
        var saved: [PruneState] = []
        let acts = acc.result(fingerprint: model.fingerprint)
        _ = try prune(
            model: model, encodings: enc, activations: acts, config: c, checkpointEvery: 3,
            checkpoint: { saved.append($0) })
        return (model, enc, acts, c, saved[0])
    }

    func testStatesThatDoNotFitTheRunAreRefused() throws {
        let (model, enc, acts, c, good) = try shortRun()
        let units = good.logAlpha.count
        let damaged: [(String, (inout PruneState) -> Void)] = [
            ("negative cursor", { $0.cursor = -5 }), ("huge cursor", { $0.cursor = Int.max }),
            ("step past the run", { $0.step = 1_000 }), ("negative step", { $0.step = -1 }),
            ("order index out of range", { $0.order[0] = 1 << 40 }), ("order repeats", { $0.order[1] = $0.order[0] }),
            ("short order", { $0.order.removeLast() }), ("three λ", { $0.lambdas = [0, 0, 0] }),
            ("NaN log α", { $0.logAlpha[2] = .nan }), ("short log α", { $0.logAlpha.removeLast() }),
            ("short Adam moments", { $0.optimizerLogAlpha = AdamWState(count: units - 1) }),
            ("λ's Adam of one", { $0.optimizerLambda = AdamWState(count: 1) }),
        ]
        for (what, damage) in damaged {
            var state = good
            damage(&state)
            XCTAssertThrowsError(
                try prune(
                    model: model, encodings: enc, activations: acts, config: c, resume: state, resumeFile: "ckpt.json"),
                what
            ) { XCTAssert("\($0)".contains("ckpt.json does not fit this run"), "\(what): \($0)") }
        }
        XCTAssertNoThrow(try prune(model: model, encodings: enc, activations: acts, config: c, resume: good))
    }

    /// The checkpoint file carries its run's name, length and CRC-32: a damaged byte, a cut, another run's file
    /// or a bare state (no header) is refused, naming the file; the intact file reads back the same state.
    func testCheckpointFilesAreChecked() throws {
        let (_, _, _, _, state) = try shortRun()
        let path = NSTemporaryDirectory() + "hcore-ckpt-\(getpid()).json"
        defer { unlink(path) }
        let bytes = try PruneRuns.checkpointBytes(state, run: "run-a")
        try writeAtomically(bytes, to: path)
        XCTAssertEqual(try PruneRuns.readCheckpoint(path, run: "run-a")?.logAlpha, state.logAlpha)
        var flipped = bytes
        flipped[bytes.count - 10] ^= 0x01
        let cases: [(String, [UInt8], String)] = [
            ("a flipped byte", flipped, "run-a"), ("a cut", Array(bytes.dropLast(7)), "run-a"),
            ("another run", bytes, "run-b"), ("no header", Array(try JSONEncoder().encode(state)), "run-a"),
        ]
        for (what, damaged, run) in cases {
            try writeAtomically(damaged, to: path)
            XCTAssertThrowsError(try PruneRuns.readCheckpoint(path, run: run), what) {
                XCTAssert("\($0)".contains(path) && "\($0)".contains("delete it to start over"), "\(what): \($0)")
            }
        }
        unlink(path)
        XCTAssertNil(try PruneRuns.readCheckpoint(path, run: "run-a"))
    }
}
