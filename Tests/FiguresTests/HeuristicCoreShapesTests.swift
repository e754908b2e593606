// hcore's eval documents written in the reference's four results shapes, and read back by `hcore figures`'
// reader as those shapes: the numbers land where the reference's scripts look for them.
import Checkpoint
import Eval
import Figures
import Foundation
import TestSupport
import XCTest

final class HeuristicCoreShapesTests: XCTestCase {
    /// An eval document over an MNLI-matched set and HANS (two subcases); each result is (name, seed, target, step, dev, hans ln, hans cn).
    func document(_ rows: [(String, Int?, Double?, Int?, Double, Double, Double)]) throws -> EvalDocument {
        func result(_ i: Int, _ r: (String, Int?, Double?, Int?, Double, Double, Double)) -> String {
            let seed = r.0 == "full" ? "\"original\"" : r.1.map { "\($0)" } ?? "null"
            return """
                {"subnetwork": "\(r.0)", "index": \(i), "seed": \(seed), "sparsity": \(r.2 ?? 0), "seconds": 1, "gflop": 1,
                 \(r.2.map { "\"target_sparsity\": \($0)," } ?? "") \(r.3.map { "\"step\": \($0)," } ?? "")
                 "metrics": {"mnli-matched": {"accuracy": \(r.4), "count": 10, "correct": 8, "confusion": {}},
                             "hans": {"accuracy": 0.5, "count": 20, "correct": 10, "confusion": {},
                                      "hans_subcases": {"ln_subject/object_swap": {"accuracy": \(r.5), "count": 10}, "cn_embedded_under_if": {"accuracy": \(r.6), "count": 10}}}}}
                """
        }
        let text = """
            {"model": "m", "fingerprint": "f", "ablation": "mean", "mask_mode": "binary", "max_length": 128, "shard": "1/1", "subnetworks_total": \(rows.count),
             "datasets": [{"name": "dev_matched.tsv", "key": "mnli-matched", "path": "p", "format": "mnli", "examples": 10, "skipped_rows": 0, "tokenize_s": 0},
                          {"name": "hans", "key": "hans", "path": "p", "format": "hans", "examples": 20, "skipped_rows": 0, "tokenize_s": 0}],
             "results": [\(rows.enumerated().map { result($0.offset, $0.element) }.joined(separator: ","))], "seconds": 1}
            """
        return try JSONDecoder().decode(EvalDocument.self, from: Data(text.utf8))
    }

    func testAccuracyVsSparsityAndFlat() throws {
        let doc = try document([
            ("full", nil, nil, nil, 0.83, 0.9, 0.4), ("s42a", 42, 0.3, nil, 0.82, 0.5, 0.3),
            ("s42b", 42, 0.5, nil, 0.80, 0.2, 0.1),
            ("s43a", 43, 0.3, nil, 0.81, 0.6, 0.35), ("s43b", 43, 0.5, nil, 0.79, 0.1, 0.05),
        ])
        let sweep = try heuristicCoreDocument([doc], shape: .accVsSparsity)
        XCTAssertEqual(sweep.get("42")?.objectValue?.map(\.0), ["0", "30", "50"])
        XCTAssertEqual(sweep.get("43")?.get("50")?.get("validation_matched")?.doubleValue, 0.79)
        // the full model at 0
        XCTAssertEqual(sweep.get("42")?.get("0")?.get("lexical_overlap_ln_subject-object_swap")?.doubleValue, 0.9)
        guard case .sweep(let parsed) = try ResultsFile.parse(sweep, path: "sweep") else {
            return XCTFail("not read as a sweep")
        }
        XCTAssertEqual(parsed["43"]?[30]?["constituent_cn_embedded_under_if"], 0.35)
        let flat = try heuristicCoreDocument([doc], shape: .flat, idNames: ["mnli-matched"])
        XCTAssertEqual(
            flat.objectValue?.map(\.0),
            [
                "seed", "sparsity", "mnli-matched", "constituent_cn_embedded_under_if",
                "lexical_overlap_ln_subject-object_swap",
            ])
        XCTAssertEqual(flat.get("seed")?.arrayValue?.compactMap(\.stringValue), ["original", "42", "42", "43", "43"])
        guard case .flat(let t) = try ResultsFile.parse(flat, path: "flat") else { return XCTFail("not read as flat") }
        XCTAssertEqual(t.column("mnli-matched"), [0.83, 0.82, 0.80, 0.81, 0.79])
        XCTAssertThrowsError(
            try heuristicCoreDocument([try document([("s", 42, 0.5, nil, 0.8, 0.1, 0.1)])], shape: .flat)
        ) { XCTAssert("\($0)".contains("full model's row"), "\($0)") }
    }

    /// A target sparsity a stored subnetwork cannot have (1e17, or −0.5) is refused by name, not turned into a
    /// percent key (1e17 · 100 trapped as an Int).
    func testImpossibleTargetSparsityIsRefused() throws {
        for target in [1e17, -0.5, 1e300] {
            let doc = try document([("full", nil, nil, nil, 0.83, 0.9, 0.4), ("s", 42, target, nil, 0.8, 0.1, 0.1)])
            XCTAssertThrowsError(try heuristicCoreDocument([doc], shape: .accVsSparsity)) {
                XCTAssert("\($0)".contains("the target_sparsity of s"), "\($0)")
            }
        }
    }

    /// A grid from two checkpoints' evaluations (one cell missing: −1.0 for every case), with the fine-tuning
    /// curve from `eval --checkpoints`, gives the effective size the reference's rule gives by hand.
    func testSparsityGridAndCurveGiveTheEffectiveSize() throws {
        let step500 = try document([("a", 42, 0.3, 500, 0.70, 0.2, 0.2), ("b", 42, 0.5, 500, 0.60, 0.1, 0.1)])
        let step1000 = try document([("c", 42, 0.3, 1000, 0.81, 0.5, 0.5)])
        let grid = try heuristicCoreDocument([step500, step1000], shape: .sparsityGrid)
        XCTAssertEqual(grid.get("42")?.get("1000")?.get("50")?.get("validation_matched")?.doubleValue, -1.0)
        XCTAssertEqual(grid.get("42")?.get("500")?.get("30")?.get("validation_matched")?.doubleValue, 0.70)
        let checkpoints = try document([
            ("checkpoint-500", nil, nil, 500, 0.72, 0.3, 0.3), ("checkpoint-1000", nil, nil, 1000, 0.82, 0.5, 0.5),
        ])
        let curve = try heuristicCoreDocument([checkpoints], shape: .accOverFT)
        XCTAssertEqual(curve.objectValue?.map(\.0), ["500", "1000"])
        guard case .grid(let g) = try ResultsFile.parse(grid, path: "g"),
            case .curve(let c) = try ResultsFile.parse(curve, path: "c")
        else { return XCTFail("shapes") }
        let id = try effectiveSizes(grid: g, curve: c, cases: ["validation_matched"], name: "ID", margin: 0.03)
        // Step 500: full 0.72 − 0.03 = 0.69; target 50 has 0.60, target 30 has 0.70 → size 70. Step 1000: 50 is
        // missing (−1.0), 30 has 0.81 > 0.79 → 70.
        XCTAssertEqual(id.sizes, [[70], [70]])
    }

    /// `hcore figures` takes an eval document as it is: read as its flat table, the in-domain set and the
    /// plotted subcases by default, the divider after the in-domain set.
    func testAnEvalDocumentIsReadAsItsFlatTable() throws {
        let doc = try document([
            ("full", nil, nil, nil, 0.83, 0.9, 0.4), ("s42", 42, 0.5, nil, 0.82, 0.5, 0.3),
            ("s43", 43, 0.5, nil, 0.80, 0.2, 0.1),
        ])
        let path = NSTemporaryDirectory() + "hcore-figures-doc-\(getpid()).json"
        try Data(doc.encoded).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        guard case .flat(let t) = try ResultsFile.load(path: path) else { return XCTFail("not read as a flat table") }
        let cases = ReferenceCases.defaults(available: Set(t.columns.map(\.name)))
        XCTAssertEqual(
            cases, ["mnli-matched", "lexical_overlap_ln_subject-object_swap", "constituent_cn_embedded_under_if"])
        let violin = try violinFigure(t, cases: cases, name: "v")
        XCTAssertEqual(
            violin.numbers.get("cases")?.get("constituent_cn_embedded_under_if")?.get("full")?.doubleValue ?? 0, 40,
            accuracy: 1e-9)
        XCTAssert(violin.canvas.svg.contains("Out of domain"))
    }
}
