// `hcore circuits` end to end: the core's keep frequencies against a direct count of the store, and compose runs.
import Checkpoint
import Foundation
import XCTest

final class CircuitsCLITests: XCTestCase {
    func testCoreFrequenciesEqualADirectCountAndComposeRuns() throws {
        let minilm = repo + "/Tests/Fixtures/models/minilm-nli"
        let store = try makeTestStore("circuits.hcs", n: 24)
        let exported = try JSONValue.parse(try hcore(["store", "export", store, "--json"]).out).arrayValue!
        XCTAssertEqual(exported.count, 24)
        let svgPath = scratch("core.svg")
        // Without in-domain values the core is refused rather than taken over every subnetwork silently.
        let refused = try hcore(["circuits", "core", "--store", store])
        XCTAssertEqual(refused.code, 2, refused.err)
        XCTAssertTrue(refused.err.contains("--id-metric is needed"), refused.err)
        let core = try hcore(["circuits", "core", "--store", store, "--all-subnetworks", "--json", "--svg", svgPath])
        XCTAssertEqual(core.code, 0, core.err)
        XCTAssertEqual(
            try JSONValue.parse(core.out).get("selection")?.stringValue, "all 24 subnetworks given (no in-domain rule)")
        let freq = try JSONValue.parse(core.out).get("keep_frequency")!
        for l in 0..<6 {
            for h in 0..<12 {
                let direct = exported.filter { $0.get("heads")!.arrayValue![l].arrayValue![h].intValue == 1 }.count
                XCTAssertEqual(freq.get("a\(l).h\(h)")!.doubleValue!, Double(direct) / 24, accuracy: 1e-12)
            }
            let direct = exported.filter { $0.get("mlps")!.arrayValue![l].intValue == 1 }.count
            XCTAssertEqual(freq.get("a\(l).mlp")!.doubleValue!, Double(direct) / 24, accuracy: 1e-12)
        }
        XCTAssert(try String(contentsOfFile: svgPath, encoding: .utf8).hasPrefix("<svg"))
        let compose = try hcore(["circuits", "compose", "--model", minilm, "--json"])
        XCTAssertEqual(compose.code, 0, compose.err)
        let doc = try JSONValue.parse(compose.out)
        XCTAssertEqual(doc.get("scores")?.arrayValue?.count, 2160)  // 12·12 pairs for each of the 15 layer pairs
        XCTAssertGreaterThan(doc.get("gaussian_baseline")?.get("q")?.doubleValue ?? 0, 0)
        // Every score is placed in the anti-causal null of its layer pair.
        let pct = doc.get("scores")!.arrayValue!.map {
            $0.get("null_percentile_qkv")!.arrayValue!.map { $0.doubleValue! }
        }
        XCTAssertTrue(pct.allSatisfy { $0.count == 3 && $0.allSatisfy { (0...1).contains($0) } })
    }
}
