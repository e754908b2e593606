// Every documented exit code (README "Exit codes") reached the way a user reaches it. The codes come from
// the kind of the error (Sources/Failures), never from its message.
import Foundation
import TestSupport
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

    /// SIGINT during a long evaluation (90,000 HANS pairs) ends with 130. The signal is sent once the process has
    /// installed its handler (read from /proc, no sleep); a hang guard kills it if it never does.
    func testInterruptIs130() throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try hcoreExecutable())
        let hans = repo + "/data/hans/heuristics_evaluation_set.txt.zst"
        p.arguments = ["eval", "--model", minilm, "--data", hans, "--data", hans, "--data", hans]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        let guardEnd = Date().addingTimeInterval(120)
        while !handlesSIGINT(p.processIdentifier) {
            guard p.isRunning, Date() < guardEnd else {
                p.terminate()
                return XCTFail("hcore ended or never installed its SIGINT handler")
            }
            usleep(1000)
        }
        p.interrupt()
        p.waitUntilExit()
        XCTAssertEqual(p.terminationReason, .exit)
        XCTAssertEqual(p.terminationStatus, 130)
    }

    /// Whether process `pid` catches SIGINT (bit 1 of SigCgt in /proc/PID/status).
    func handlesSIGINT(_ pid: Int32) -> Bool {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("SigCgt:") }),
            let mask = UInt64(line.dropFirst("SigCgt:".count).trimmingCharacters(in: .whitespaces), radix: 16)
        else { return false }
        return mask & (1 << (SIGINT - 1)) != 0
    }
}
