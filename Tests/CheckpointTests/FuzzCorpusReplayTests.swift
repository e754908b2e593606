// Replays the fuzzers' saved corpus (Fuzz/corpus/<target>/: the seeds and every input that ever crashed a
// parser) through the same entry points the fuzzers call: each must come back — a thrown error is fine —
// so a fixed crash stays fixed on every CI run.
import Foundation
import ParserHarness
import TestSupport
import XCTest

final class FuzzCorpusReplayTests: XCTestCase {
    func testEverySavedInputReturns() throws {
        let corpus = repositoryRoot.appendingPathComponent("Fuzz/corpus").path
        let targets = try FileManager.default.contentsOfDirectory(atPath: corpus).sorted()
        XCTAssertEqual(
            Set(targets), Set(ParserHarness.targets.keys),
            "every fuzz target has a saved corpus, and every corpus a target")
        var replayed = 0
        for target in targets {
            guard let parse = ParserHarness.targets[target] else { continue }
            let files = try FileManager.default.contentsOfDirectory(atPath: corpus + "/" + target).sorted()
            XCTAssertFalse(files.isEmpty, "Fuzz/corpus/\(target) is empty")
            for f in files {
                parse(Array(try Data(contentsOf: URL(fileURLWithPath: corpus + "/" + target + "/" + f))))
                replayed += 1
            }
        }
        XCTAssertGreaterThan(replayed, 0)
    }
}
