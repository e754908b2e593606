// Every family of hostile or broken input found by adversarial testing, rebuilt here by code (no hostile
// binaries are committed) and run through the binary: each ends in its documented exit code
// (2 usage, 3 bad input, 4 mismatch, 5 write failed) with a message naming the file —
// never a signal, a hang, a silent NaN or an empty result.
import Checkpoint
import Foundation
import TestSupport
import XCTest

final class HostileInputCLITests: XCTestCase {
    let tiny = repo + "/Tests/Fixtures/models/tiny-bert"

    /// Runs hcore with `env` added, stdout to `stdout` (default: a pipe), and checks code and message; a hang
    /// guard kills a run that does not end.
    @discardableResult
    func expect(
        _ code: Int32, _ args: [String], naming fragment: String, env: [String: String] = [:],
        stdout: FileHandle? = nil,
        file: StaticString = #filePath, line: UInt = #line
    ) throws -> String {
        let p = Process()
        let e = Pipe()
        let o = Pipe()
        p.executableURL = URL(fileURLWithPath: try hcoreExecutable())
        p.arguments = args
        p.environment = ProcessInfo.processInfo.environment.merging(env) { $1 }
        p.standardOutput = stdout ?? o
        p.standardError = e
        try p.run()
        let hang = HangGuard(p)
        if stdout == nil { _ = o.fileHandleForReading.readDataToEndOfFile() }
        let err = String(decoding: e.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        XCTAssertFalse(hang.disarm(), "hung: killed by the guard", file: file, line: line)
        XCTAssertEqual(p.terminationReason, .exit, "ended by a signal: \(err)", file: file, line: line)
        XCTAssertEqual(p.terminationStatus, code, err, file: file, line: line)
        XCTAssert(err.contains(fragment), "message does not name '\(fragment)': \(err)", file: file, line: line)
        return err
    }

    /// A copy of tiny-bert with `config` keys replaced and files replaced or removed.
    func model(_ name: String, config: [String: Any] = [:], files: [String: [UInt8]] = [:], remove: [String] = [])
        throws -> String
    {
        let dir = scratch("hostile-" + name)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        for f in ["config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json"] where !remove.contains(f) {
            try FileManager.default.copyItem(atPath: tiny + "/" + f, toPath: dir + "/" + f)
        }
        if !config.isEmpty {
            var c =
                try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/config.json")))
                as! [String: Any]
            for (k, v) in config { c[k] = v }
            try JSONSerialization.data(withJSONObject: c).write(to: URL(fileURLWithPath: dir + "/config.json"))
        }
        for (f, bytes) in files {
            try? FileManager.default.removeItem(atPath: dir + "/" + f)
            try Data(bytes).write(to: URL(fileURLWithPath: dir + "/" + f))
        }
        return dir
    }

    /// A pytorch_model.bin whose pickle is `build`'s (tiny-bert's safetensors removed so the .bin is read).
    func binModel(_ name: String, _ build: (inout PickleBuilder) -> Void) throws -> String {
        var p = PickleBuilder()
        p.op(0x80)
        p.byte(2)
        build(&p)
        var w = TorchCheckpointWriter()
        w.add("x", shape: [1], [0])
        return try model(
            name, files: ["pytorch_model.bin": w.serialized(pickleOverride: p.bytes)], remove: ["model.safetensors"])
    }

    // MARK: pickles that are valid but absurd

    func testDeeplyNestedPickle() throws {
        let dir = try binModel("nested") { p in
            p.op(0x4E)  // NONE
            for _ in 0..<100_000 { p.op(0x85) }  // TUPLE1 × 100k
            p.op(0x2E)
        }
        try expect(3, ["info", "--model", dir], naming: "pytorch_model.bin")
    }

    func testDupAppendQuadraticPickle() throws {
        let dir = try binModel("dup-append") { p in
            p.op(0x5D)  // EMPTY_LIST
            for _ in 0..<20_000 {
                p.op(0x32)
                p.op(0x4E)
                p.op(0x61)
            }  // DUP, NONE, APPEND
            p.op(0x2E)
        }
        try expect(3, ["info", "--model", dir], naming: "pytorch_model.bin")
    }

    func testHundredThousandSetItemsIsLinear() throws {
        let dir = try binModel("setitems") { p in
            p.op(0x7D)
            p.op(0x28)  // EMPTY_DICT, MARK
            for k in 0..<100_000 {
                p.int(k)
                p.op(0x4E)
            }
            p.op(0x75)
            p.op(0x2E)  // SETITEMS, STOP
        }
        try expect(3, ["info", "--model", dir], naming: "pytorch_model.bin")
    }

    func testDeepValuesAsDictKeysAreRefused() throws {
        let dir = try binModel("list-keys") { p in
            p.op(0x7D)  // EMPTY_DICT
            p.op(0x5D)
            for _ in 0..<40 { p.op(0x85) }  // a 40-deep value as key
            p.op(0x4E)
            p.op(0x73)
            p.op(0x2E)  // NONE, SETITEM, STOP
        }
        try expect(3, ["info", "--model", dir], naming: "pytorch_model.bin")
    }

    // MARK: sizes and counts that overflow or allocate absurdly

    func testTinyZipWithZip64Locator() throws {
        var b = [UInt8](repeating: 0, count: 42)
        b[0...3] = [0x50, 0x4B, 0x06, 0x07]  // ZIP64 locator
        for i in 8..<16 { b[i] = 0xFF }  // record offset 2^64 − 1
        b[20...23] = [0x50, 0x4B, 0x05, 0x06]  // EOCD
        for i in 30..<38 { b[i] = 0xFF }  // entry count / sizes say "see ZIP64"
        let dir = try model("zip64", files: ["pytorch_model.bin": b], remove: ["model.safetensors"])
        try expect(3, ["info", "--model", dir], naming: "pytorch_model.bin")
    }

    func testHugeConfigValues() throws {
        try expect(3, ["info", "--model", try model("labels", config: ["num_labels": 1e12])], naming: "num_labels")
        try expect(3, ["info", "--model", try model("vocab", config: ["vocab_size": 1e15])], naming: "vocab_size")
        try expect(3, ["info", "--model", try model("eps", config: ["layer_norm_eps": -1])], naming: "layer_norm_eps")
    }

    func testAddedTokenIdBeyondInt32() throws {
        var t =
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: tiny + "/tokenizer.json")))
            as! [String: Any]
        t["added_tokens"] = [["id": 1 << 31, "content": "[HUGE]"]]
        let dir = try model(
            "added-token", files: ["tokenizer.json": Array(try JSONSerialization.data(withJSONObject: t))],
            remove: ["vocab.txt"])
        try expect(3, ["tokenize", "--model", dir, "hello"], naming: "tokenizer.json")
    }

    func testSlurmValuesAtTheIntegerLimits() throws {
        try expect(
            2, ["eval", "--model", tiny, "--data", repo + "/data/hans/heuristics_evaluation_set.txt.zst"],
            naming: "SLURM_ARRAY_TASK_ID",
            env: [
                "SLURM_ARRAY_TASK_ID": "9223372036854775807", "SLURM_ARRAY_TASK_MIN": "-9223372036854775808",
                "SLURM_ARRAY_TASK_COUNT": "4",
            ])
    }

    func testThreadCountIsCapped() throws {
        let p = try hcoreWithEnv(["info", "--model", tiny], env: ["HCORE_THREADS": "2000"])
        XCTAssertEqual(p.code, 0, p.err)
    }

    func hcoreWithEnv(_ args: [String], env: [String: String]) throws -> (code: Int32, err: String) {
        let p = Process()
        let e = Pipe()
        p.executableURL = URL(fileURLWithPath: try hcoreExecutable())
        p.arguments = args
        p.environment = ProcessInfo.processInfo.environment.merging(env) { $1 }
        p.standardOutput = FileHandle.nullDevice
        p.standardError = e
        try p.run()
        let err = String(decoding: e.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        return (p.terminationStatus, err)
    }

    // MARK: silent garbage, refused loudly

    /// tiny-bert's safetensors with its header re-padded: `transform` gets the header object.
    func safetensors(_ transform: (inout [String: Any]) -> Void, lengthDelta: Int = 0) throws -> [UInt8] {
        let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: tiny + "/model.safetensors")))
        let n = Int(bytes[0..<8].enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) })
        var header = try JSONSerialization.jsonObject(with: Data(bytes[8..<(8 + n)])) as! [String: Any]
        transform(&header)
        var text = Array(try JSONSerialization.data(withJSONObject: header))
        guard text.count <= n else { throw NSError(domain: "test", code: 1) }
        text += [UInt8](repeating: 0x20, count: n - text.count)  // same length: the data stays where it was
        let length = UInt64(n + lengthDelta)
        return (0..<8).map { UInt8((length >> (8 * UInt64($0))) & 0xFF) } + text + Array(bytes[(8 + n)...])
    }

    func testHeaderLengthShortByTrailingSpaces() throws {
        // The header's trailing padding is cut from its stated length: every tensor would shift by 8 bytes.
        let dir = try model(
            "short-header",
            files: ["model.safetensors": try safetensors({ h in h["__metadata__"] = nil }, lengthDelta: -8)])
        try expect(3, ["info", "--model", dir], naming: "model.safetensors")
    }

    func testMisspeltPoolerIsNamed() throws {
        let dir = try model(
            "pooler",
            files: [
                "model.safetensors": try safetensors { h in
                    h["bert.poolr.dense.weight"] = h.removeValue(forKey: "bert.pooler.dense.weight")
                }
            ])
        try expect(3, ["info", "--model", dir], naming: "pooler")
    }

    func testNonFiniteWeightsAreRefused() throws {
        var bytes = Array(try Data(contentsOf: URL(fileURLWithPath: tiny + "/model.safetensors")))
        let nan = Float.nan.bitPattern
        // the last float of the file
        for i in 0..<4 { bytes[bytes.count - 4 + i] = UInt8((nan >> (8 * UInt32(i))) & 0xFF) }
        try expect(3, ["info", "--model", try model("nan", files: ["model.safetensors": bytes])], naming: "non-finite")
    }

    func testNonFiniteMeanActivationsAreRefused() throws {
        var w = SafetensorsWriter()
        w.add("avg_head", shape: [2, 4, 8], [Float](repeating: .nan, count: 64))
        w.add("avg_mlp", shape: [2, 32], [Float](repeating: 0, count: 64))
        let acts = scratch("nan-acts.safetensors")
        try w.write(to: acts)
        let mask = scratch("tiny-mask.json")
        try #"{"heads": [[1, 0, 1, 1], [1, 1, 0, 1]], "mlps": [1, 0]}"#.write(
            toFile: mask, atomically: true, encoding: .utf8)
        try expect(
            3, ["predict", "--model", tiny, "--mask", mask, "--activations", acts, "a", "b"],
            naming: "nan-acts.safetensors")
    }

    func testEmptyDatasetIsRefused() throws {
        let empty = scratch("empty.jsonl")
        try "".write(toFile: empty, atomically: true, encoding: .utf8)
        try expect(3, ["eval", "--model", tiny, "--data", empty], naming: "empty.jsonl")
        let header = scratch("header-only.tsv")
        try
            "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\tsentence2_parse\tsentence1\tsentence2\tlabel1\tgold_label\n"
            .write(toFile: header, atomically: true, encoding: .utf8)
        try expect(3, ["eval", "--model", tiny, "--data", header], naming: "header-only.tsv")
    }

    func testStoreRefusesNaNThresholdAndWrongActivations() throws {
        let store = scratch("hostile.hcs")
        XCTAssertEqual(try hcore(["store", "create", store, "--model", tiny]).code, 0)
        let mask = scratch("frac-mask.json")
        try #"{"heads": [[1, 0.5, 1, 1], [1, 1, 0, 1]], "mlps": [1, 0]}"#.write(
            toFile: mask, atomically: true, encoding: .utf8)
        try expect(
            2, ["store", "add", store, "--mask", mask, "--name", "x", "--threshold", "nan"], naming: "--threshold")
        var w = SafetensorsWriter()
        w.add("avg_head", shape: [3, 4, 8], [Float](repeating: 0, count: 96))
        w.add("avg_mlp", shape: [3, 32], [Float](repeating: 0, count: 96))
        let acts = scratch("wrong-acts.safetensors")
        try w.write(to: acts)
        try expect(
            4, ["store", "add-activations", store, "--name", "w", "--file", acts], naming: "wrong-acts.safetensors")
    }

    // MARK: outputs

    func testUnwritableStdoutIsExit5() throws {
        try expect(
            5, ["info", "--model", tiny, "--json"], naming: "standard output",
            stdout: FileHandle(forWritingAtPath: "/dev/full")!)
    }

    func testExportToAnUnwritablePathIsExit5() throws {
        let store = scratch("export.hcs")
        XCTAssertEqual(try hcore(["store", "create", store, "--model", tiny]).code, 0)
        try expect(
            5, ["store", "export", store, "--npy", "/proc/hcore-cannot-write-here"],
            naming: "/proc/hcore-cannot-write-here")
    }

    func testOutputThroughASymlinkKeepsTheLink() throws {
        let target = scratch("acts-target.safetensors")
        let link = scratch("acts-link.safetensors")
        try Data([1, 2, 3]).write(to: URL(fileURLWithPath: target))
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: target)
        let r = try hcore([
            "activations", "--model", tiny, "--data", repo + "/data/hans/heuristics_evaluation_set.txt.zst",
            "--max-examples", "8", "--out", link,
        ])
        XCTAssertEqual(r.code, 0, r.err)
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: link), target)
        XCTAssertNoThrow(try SafetensorsFile(path: target))
    }

    func testCRLFVocabularyReadsAsLF() throws {
        let vocab = try String(contentsOfFile: tiny + "/vocab.txt", encoding: .utf8)
        let dir = try model(
            "crlf", files: ["vocab.txt": Array(vocab.replacingOccurrences(of: "\n", with: "\r\n").utf8)])
        let a = try hcore(["tokenize", "--model", dir, "The doctor saw the lawyer."])
        let b = try hcore(["tokenize", "--model", tiny, "The doctor saw the lawyer."])
        XCTAssertEqual(a.code, 0, a.err)
        XCTAssertEqual(a.out, b.out)
    }
}
