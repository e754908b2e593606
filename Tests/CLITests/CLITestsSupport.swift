// What the CLI tests share: running the hcore binary of this test build (TestSupport's `hcoreExecutable`) and
// reading the golden logits independently of hcore's own reader.
import Foundation
import TestSupport
import XCTest

let repo = repositoryRoot.path

func hcore(_ args: [String], stdin: String? = nil, in directory: String = repo, environment: [String: String] = [:])
    throws -> (code: Int32, out: String, err: String)
{
    let exe = try hcoreExecutable()
    let p = Process()
    p.executableURL = URL(fileURLWithPath: exe)
    p.arguments = args
    p.currentDirectoryURL = URL(fileURLWithPath: directory)
    if !environment.isEmpty { p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
    let o = Pipe()
    let e = Pipe()
    p.standardOutput = o
    p.standardError = e
    try p.run()
    let out = o.fileHandleForReading.readDataToEndOfFile()
    let err = e.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: out, as: UTF8.self), String(decoding: err, as: UTF8.self))
}

/// hcore run with a hang guard, through `sh -c 'exec …'` so that a descriptor can be closed (`2>&-`);
/// `signalled` is set when a signal ended it, `hung` when the guard had to kill it.
func hcoreGuarded(_ args: [String], in directory: String = repo, closeStderr: Bool = false) throws
    -> (code: Int32, err: String, signalled: Bool, hung: Bool)
{
    let p = Process()
    let e = Pipe()
    p.executableURL = URL(fileURLWithPath: "/bin/sh")
    let quoted = ([try hcoreExecutable()] + args).map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }
    p.arguments = ["-c", "exec " + quoted.joined(separator: " ") + (closeStderr ? " 2>&-" : "")]
    p.currentDirectoryURL = URL(fileURLWithPath: directory)
    p.standardOutput = FileHandle.nullDevice
    p.standardError = e
    try p.run()
    let hang = HangGuard(p)
    let err = String(decoding: e.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    p.waitUntilExit()
    let hung = hang.disarm()
    return (p.terminationStatus, err, p.terminationReason == .uncaughtSignal, hung)
}

/// Reads the golden logits with a few lines of safetensors parsing (independent of hcore's reader).
func goldenLogitsFromFixture() throws -> [Float] {
    do {
        let d = try Data(
            contentsOf: URL(fileURLWithPath: repo + "/Tests/Fixtures/golden/minilm-nli_outputs.safetensors"))
        let n = d.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        let header = try JSONSerialization.jsonObject(with: d.subdata(in: 8..<(8 + n))) as! [String: Any]
        let entry = header["logits"] as! [String: Any]
        let offsets = entry["data_offsets"] as! [Int]
        let bytes = d.subdata(in: (8 + n + offsets[0])..<(8 + n + offsets[1]))
        return bytes.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
    }
}

extension CLITests {

    func testExitCodes() throws {
        XCTAssertEqual(try hcore(["predict", "--model", "/nonexistent", "a"]).code, 3)
        XCTAssertEqual(try hcore(["predict", "--model", minilm]).code, 2)
        XCTAssertEqual(try hcore(["predict", "--bogus-flag"]).code, 2)
        XCTAssertEqual(try hcore(["--help"]).code, 0)
        let badMask = NSTemporaryDirectory() + "hcore-bad-mask-\(getpid()).json"
        try #"{"heads": [[1, 1]], "mlps": [1]}"#.write(toFile: badMask, atomically: true, encoding: .utf8)
        let r = try hcore(["predict", "--model", minilm, "--mask", badMask, "--zero-ablation", "a", "b"])
        XCTAssertEqual(r.code, 4, r.err)
        XCTAssert(r.err.contains("mask shape"), r.err)
        let truncated = NSTemporaryDirectory() + "hcore-truncated-\(getpid())"
        try? FileManager.default.createDirectory(atPath: truncated, withIntermediateDirectories: true)
        try? FileManager.default.removeItem(atPath: truncated + "/config.json")
        try FileManager.default.copyItem(atPath: minilm + "/config.json", toPath: truncated + "/config.json")
        let st = try Data(contentsOf: URL(fileURLWithPath: repo + "/Tests/Fixtures/models/tiny-bert/model.safetensors"))
        try st.prefix(5000).write(to: URL(fileURLWithPath: truncated + "/model.safetensors"))
        let t = try hcore(["info", "--model", truncated])
        XCTAssertEqual(t.code, 3, t.err)
        XCTAssert(t.err.contains("model.safetensors"), t.err)
    }

    func testTokenizeMatchesGoldenCase() throws {
        let r = try hcore([
            "tokenize", "--model", minilm, "The artist was admired by the tourists .",
            "The artist admired the tourists .",
        ])
        XCTAssertEqual(r.code, 0, r.err)
        XCTAssertEqual(
            r.out.trimmingCharacters(in: .whitespacesAndNewlines),
            #"{"input_ids":[101,1996,3063,2001,12749,2011,1996,9045,1012,102,1996,3063,12749,1996,9045,1012,102],"token_type_ids":[0,0,0,0,0,0,0,0,0,0,1,1,1,1,1,1,1]}"#
        )
    }
}
