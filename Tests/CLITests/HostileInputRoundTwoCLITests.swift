// The second round of hostile input, through the binary: numbers from flags and files, special files, resume
// state's leftovers, contradicting shards, results files, and writers that clobbered or leaked. Each case ends
// in its documented exit code with the culprit named — never a trap, a hang or a plausible wrong answer.
import Checkpoint
import Foundation
import TestSupport
import XCTest

final class HostileInputRoundTwoCLITests: XCTestCase {
    let tiny = repo + "/Tests/Fixtures/models/tiny-bert"
    let train = repo + "/data/hans/heuristics_train_set.txt.zst"

    func run(_ args: [String], closeStderr: Bool = false, file: StaticString = #filePath, line: UInt = #line) throws
        -> (code: Int32, err: String)
    {
        let r = try hcoreGuarded(args, closeStderr: closeStderr)
        XCTAssertFalse(r.hung, "hung: killed by the guard", file: file, line: line)
        XCTAssertFalse(r.signalled, "ended by a signal: \(r.err)", file: file, line: line)
        return (r.code, r.err)
    }

    func expect(
        _ code: Int32, _ args: [String], naming fragment: String, file: StaticString = #filePath, line: UInt = #line
    ) throws {
        let r = try run(args, file: file, line: line)
        XCTAssertEqual(r.code, code, r.err, file: file, line: line)
        XCTAssert(r.err.contains(fragment), "message does not name '\(fragment)': \(r.err)", file: file, line: line)
    }

    /// Numbers from flags are checked when the command line is parsed, with the range in the message.
    func testNumericFlagsOutOfRangeAreUsageErrors() throws {
        let data = repo + "/Tests/Fixtures/reference/datasets/paws-qqp"
        try expect(2, ["eval", "--model", tiny, "--data", data, "--threshold", "nan"], naming: "--threshold is nan")
        try expect(
            2,
            [
                "finetune", "--model", tiny, "--train", train, "--out", scratch("ft-huge"),
                "--per_device_train_batch_size", "4611686018427387904",
            ],
            naming: "--per-device-train-batch-size is 4.611686018427388e+18; it must be an integer in [1, 65536]")
        try expect(2, ["predict", "--model", tiny, "a", "b", "--batch-size=0"], naming: "in [1, 65536]")
        try expect(2, ["circuits", "core", "--store", "x.hcs", "--margin", "inf"], naming: "--margin is inf")
    }

    /// A fresh folder holding mean activations of tiny-bert over 32 HANS training pairs (a pruning run's input).
    func pruneFolder(_ name: String) throws -> String {
        let dir = scratch(name)
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let acts = try hcore([
            "activations", "--model", tiny, "--data", train, "--max-examples", "32", "--out", dir + "/a.safetensors",
        ])
        XCTAssertEqual(acts.code, 0, acts.err)
        return dir
    }

    /// A pruning run: a seed of 2^63 is written exactly (it used to trap after the run, losing it); with stderr
    /// closed, the trace is not given descriptor 2 (log lines used to land in it); a checkpoint's temporary file
    /// left by a killed writer is removed.
    func testPruneWithHugeSeedClosedStderrAndStaleTemporaries() throws {
        let dir = try pruneFolder("prune-round-two")
        let name = "prune-t0.3-seed9223372036854775808"
        let stale = dir + "/s.hcs.prune-\(name).json.tmp-999999999-abcdef"
        try writeAtomically([1, 2, 3], to: stale)
        let r = try run(
            [
                "prune", "--model", tiny, "--train", train, "--max-train-samples", "32", "--activations",
                dir + "/a.safetensors", "--store", dir + "/s.hcs", "--target-sparsity", "0.3", "--max-steps", "3",
                "--num-sparsity-warmup-steps", "2", "--per-device-train-batch-size", "8", "--seed",
                "9223372036854775808", "--trace", dir + "/trace.jsonl",
            ], closeStderr: true)
        XCTAssertEqual(r.code, 0, r.err)
        XCTAssertFalse(FileManager.default.fileExists(atPath: stale))
        let trace = try String(contentsOfFile: dir + "/trace.jsonl", encoding: .utf8)
        XCTAssertEqual(trace.split(separator: "\n").count, 3)
        XCTAssert(trace.split(separator: "\n").allSatisfy { $0.hasPrefix("{\"step\":") }, trace)
        let ls = try hcore(["store", "ls", dir + "/s.hcs", "--json"])
        XCTAssert(ls.out.contains(name), ls.out)
        XCTAssert(ls.out.contains("9223372036854775808"), ls.out)
        // A checkpoint left by a run stopped between its commit and the checkpoint's removal goes with the rerun.
        let checkpoint = dir + "/s.hcs.prune-\(name).json"
        try writeAtomically([0x7B, 0x7D], to: checkpoint)
        let rerun = try run([
            "prune", "--model", tiny, "--train", train, "--max-train-samples", "32", "--activations",
            dir + "/a.safetensors", "--store", dir + "/s.hcs", "--target-sparsity", "0.3", "--max-steps", "3",
            "--num-sparsity-warmup-steps", "2", "--per-device-train-batch-size", "8", "--seed", "9223372036854775808",
        ])
        XCTAssertEqual(rerun.code, 0, rerun.err)
        XCTAssert(rerun.err.contains("skipped"), rerun.err)
        XCTAssertFalse(FileManager.default.fileExists(atPath: checkpoint))
    }

    /// A run killed after a checkpoint resumes from it in a new process and writes its next checkpoints over the
    /// file it read (the rule that no output replaces an input has this one exception).
    func testKilledPruneRunResumesInANewProcess() throws {
        let dir = try pruneFolder("prune-resume")
        let args = [
            "prune", "--model", tiny, "--train", train, "--max-train-samples", "32", "--activations",
            dir + "/a.safetensors", "--store", dir + "/s.hcs", "--target-sparsity", "0.3", "--max-steps", "400",
            "--num-sparsity-warmup-steps", "200", "--per-device-train-batch-size", "8", "--checkpoint-steps", "2",
        ]
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try hcoreExecutable())
        p.arguments = args
        p.standardError = FileHandle.nullDevice
        try p.run()
        let checkpoint = dir + "/s.hcs.prune-prune-t0.3-seed42.json"
        let hang = HangGuard(p)
        while p.isRunning && !FileManager.default.fileExists(atPath: checkpoint) { usleep(10_000) }
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        _ = hang.disarm()
        XCTAssert(FileManager.default.fileExists(atPath: checkpoint), "no checkpoint before the kill")
        let resumed = try run(args)
        XCTAssertEqual(resumed.code, 0, resumed.err)
        XCTAssert(resumed.err.contains("resuming from"), resumed.err)
        XCTAssertFalse(FileManager.default.fileExists(atPath: checkpoint))
    }

    /// Special files are refused by name, never read to the end or waited on.
    func testSpecialFilesAreRefused() throws {
        try expect(3, ["eval", "--model", tiny, "--data", "/dev/zero"], naming: "/dev/zero: is a character device")
        let fifo = scratch("fifo.tsv")
        unlink(fifo)
        XCTAssertEqual(mkfifo(fifo, 0o600), 0)
        try expect(3, ["eval", "--model", tiny, "--data", fifo], naming: "is a FIFO")
        // activations are told apart by their first byte: that peek must not wait on a FIFO either
        let store = try makeTestStore("fifo-acts.hcs", n: 1)
        try expect(3, ["store", "add-activations", store, "--name", "x", "--file", fifo], naming: "is a FIFO")
        try expect(3, ["figures", "/dev/zero"], naming: "character device")
    }

    /// A set without gold labels (HF's −1, or none) cannot be evaluated: it used to report "accuracy 0.0 over 0".
    func testUnlabelledSetsAreNotScored() throws {
        let jsonl = scratch("unlabelled.jsonl")
        try writeAtomically(
            Array(
                "{\"text\": \"the cat sat\", \"text_pair\": \"a cat sat\", \"label\": \"entailment\"}\n{\"text\": \"a b\", \"text_pair\": \"b a\"}\n"
                    .utf8),
            to: jsonl)
        try expect(
            3, ["eval", "--model", repo + "/Tests/Fixtures/models/minilm-nli", "--data", jsonl],
            naming: "example 2 has no label this model can score")
    }

    /// An output naming one of the command's inputs is refused and the input left as it was.
    func testOutputsNeverReplaceInputs() throws {
        let data = scratch("own-input.jsonl")
        let text = "{\"text\": \"the cat sat\", \"text_pair\": \"a cat sat\", \"label\": \"entailment\"}\n"
        try writeAtomically(Array(text.utf8), to: data)
        let minilm = repo + "/Tests/Fixtures/models/minilm-nli"
        try expect(
            5, ["eval", "--model", minilm, "--data", data, "--csv", data], naming: "is one of this command's inputs")
        try expect(
            5, ["activations", "--model", minilm, "--data", data, "--out", minilm + "/model.safetensors"],
            naming: "is one of this command's inputs")
        XCTAssertEqual(try String(contentsOfFile: data, encoding: .utf8), text)
    }

    /// figures: an output that is a file is a write failure saying so, not a Foundation dump.
    func testFiguresOutNamingAFile() throws {
        let out = scratch("figures-out-file")
        try writeAtomically([0x0A], to: out)
        try expect(
            5, ["figures", repo + "/Tests/Fixtures/reference/eval/mnli-sp50.json", "--out", out],
            naming: "is a file, not a folder")
    }

    /// An export into a folder holding another model's files is refused unless --force, which removes them; onto
    /// the model's own folder it is refused even with --force.
    func testExportNeverClobbersOrKeepsAnotherModelsFiles() throws {
        let mask = scratch("export-mask.json")
        try writeAtomically(
            Array(#"{"heads": [[1, 0, 1, 1], [1, 1, 1, 1]], "mlps": [1, 1]}"#.utf8), to: mask)
        let folder = scratch("export-dirty")
        try? FileManager.default.removeItem(atPath: folder)
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try writeAtomically(Array(#"{"[X]": 5}"#.utf8), to: folder + "/added_tokens.json")  // another model's
        let args = ["store", "export", "--hf-folder", folder, "--model", tiny, "--mask", mask, "--zero-ablation"]
        try expect(2, args, naming: "--force is needed to write into")
        let forced = try run(args + ["--force"])
        XCTAssertEqual(forced.code, 0, forced.err)
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder + "/added_tokens.json"))
        try expect(
            5, ["store", "export", "--hf-folder", tiny, "--model", tiny, "--mask", mask, "--zero-ablation", "--force"],
            naming: "is the folder of the model being read")
    }

    /// NaN mean activations are refused when added to a store, not when a later command uses them.
    func testNaNActivationsAreRefusedWhenAdded() throws {
        let store = try makeTestStore("nan-acts.hcs", n: 2)
        var w = SafetensorsWriter()
        w.add("avg_head", shape: [6, 12, 32], [Float](repeating: .nan, count: 6 * 12 * 32))
        w.add("avg_mlp", shape: [6, 384], [Float](repeating: 0, count: 6 * 384))
        let file = scratch("nan-acts.safetensors")
        try w.write(to: file)
        try expect(3, ["store", "add-activations", store, "--name", "bad", "--file", file], naming: "must be finite")
    }
}
