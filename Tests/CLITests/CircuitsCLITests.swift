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

    /// `circuits ablate --matching --units`: each matching subnetwork's ablation of just those units equals
    /// `--subnetwork N` run alone on the whole model's units, and the summary's mean is their mean.
    func testAblateUnitsAcrossMatchingSubnetworks() throws {
        let minilm = repo + "/Tests/Fixtures/models/minilm-nli"
        let hans = repo + "/data/hans/heuristics_evaluation_set.txt.zst"
        let store = try makeTestStore("ablate-matching.hcs", n: 3)
        let common = [
            "circuits", "ablate", "--model", minilm, "--store", store, "--data", hans, "--max-examples", "12",
        ]
        let across = try hcore(common + ["--all-subnetworks", "--matching", "--units", "a0.h0,a1.h3,a2.mlp"])
        XCTAssertEqual(across.code, 0, across.err)
        let doc = try JSONValue.parse(across.out)
        let runs = try XCTUnwrap(doc.get("subnetworks")?.arrayValue)
        XCTAssertEqual(runs.map { $0.get("base")?.stringValue }, ["s0", "s1", "s2"])
        var deltas: [String: [Double]] = [:]
        for run in runs {
            let name = run.get("base")!.stringValue!
            let alone = try hcore(common + ["--subnetwork", name])
            XCTAssertEqual(alone.code, 0, alone.err)
            let every = try JSONValue.parse(alone.out).get("units")!.arrayValue!
            let some = run.get("units")!.arrayValue!
            XCTAssertTrue(some.allSatisfy { ["a0.h0", "a1.h3", "a2.mlp"].contains($0.get("unit")!.stringValue!) })
            for u in some {
                let unit = u.get("unit")!.stringValue!
                let same = try XCTUnwrap(every.first { $0.get("unit")?.stringValue == unit }, "\(name) \(unit)")
                let d = { (x: JSONValue) in x.get("metrics")!.get("hans")!.get("delta_accuracy")!.doubleValue! }
                XCTAssertEqual(d(u), d(same), accuracy: 1e-12, "\(name) \(unit)")
                deltas[unit, default: []].append(d(u))
            }
        }
        for u in doc.get("units")!.arrayValue! {
            let unit = u.get("unit")!.stringValue!
            let summary = u.get("metrics")!.get("hans")!.get("delta_accuracy")!
            let xs = deltas[unit]!
            XCTAssertEqual(summary.get("mean")!.doubleValue!, xs.reduce(0, +) / Double(xs.count), accuracy: 1e-12)
            XCTAssertEqual(summary.get("subnetworks")!.intValue!, xs.count)
        }
        let both = try hcore(common + ["--all-subnetworks", "--matching", "--subnetwork", "s0"])
        XCTAssertEqual(both.code, 2, both.err)
    }
}
