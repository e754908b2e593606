// Every documented exit code (README "Exit codes") reached the way a user reaches it. The codes come from
// the kind of the error (Sources/Failures), never from its message.
import Foundation
import XCTest

final class ExitCodeTests: XCTestCase {
    let tiny = repo + "/Tests/Fixtures/models/tiny-bert"
    let minilm = repo + "/Tests/Fixtures/models/minilm-nli"

    func testUsageIs2() throws {
        XCTAssertEqual(try hcore(["predict", "--bogus-flag"]).code, 2)  // the parser
        let r = try hcore(["eval", "--model", tiny])  // a command's own check
        XCTAssertEqual(r.code, 2, r.err)
        XCTAssert(r.err.contains("--data"), r.err)
        XCTAssertEqual(try hcore(["eval", "--help"]).code, 0)
        XCTAssertEqual(try hcore(["eval", "merge", "--help"]).code, 0)
    }

    func testBadInputIs3() throws {
        let r = try hcore(["eval", "merge", "/nonexistent/part1.json"])
        XCTAssertEqual(r.code, 3, r.err)
        XCTAssert(r.err.contains("/nonexistent/part1.json"), r.err)
    }

    func testMismatchIs4() throws {
        let mask = NSTemporaryDirectory() + "hcore-mask-\(getpid()).json"
        try #"{"heads": [[1, 1, 1]], "mlps": [1]}"#.write(toFile: mask, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: mask) }
        let r = try hcore(["predict", "--model", tiny, "--mask", mask, "--zero-ablation", "a", "b"])
        XCTAssertEqual(r.code, 4, r.err)
    }

    func testWriteFailureIs5() throws {
        let r = try hcore(["store", "create", "/dev/null/x.hcs", "--model", tiny])
        XCTAssertEqual(r.code, 5, r.err)
        XCTAssert(r.err.contains("/dev/null/x.hcs"), r.err)
    }

    /// SIGINT during a long evaluation (30,000 HANS pairs) ends with 130.
    func testInterruptIs130() throws {
        let exe = repo + "/.build/release/hcore"
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: exe), "release binary not built")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = ["eval", "--model", minilm, "--data", repo + "/data/hans/heuristics_evaluation_set.txt.zst"]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        Thread.sleep(forTimeInterval: 1.5)
        XCTAssert(p.isRunning, "the evaluation finished before it could be interrupted")
        p.interrupt()
        p.waitUntilExit()
        XCTAssertEqual(p.terminationReason, .exit)
        XCTAssertEqual(p.terminationStatus, 130)
    }
}
