// The whole story in miniature: `hcore demo --quick --subnetworks 2`, run from an empty folder (the HANS
// files travel inside the binary), runs every stage and leaves the report; a rerun keeps every stage and
// one with other settings is refused; its model folder is a Hugging Face folder hcore loads back;
// `hcore report` and `hcore finetune` work on its outputs; bad flags fail with the documented exit code.
import Foundation
import TestSupport
import XCTest

final class DemoCLITests: XCTestCase {
    func testQuickDemoRunsEveryStage() throws {
        let empty = NSTemporaryDirectory() + "hcore-demo-\(getpid())"
        let out = empty + "/d"
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: empty) }
        let r = try hcore(["demo", "--quick", "--subnetworks", "2", "--out", "d"], in: empty)
        XCTAssertEqual(r.code, 0, r.err)
        for stage in 1...8 { XCTAssertTrue(r.err.contains("[\(stage)/8"), "stage \(stage) missing:\n\(r.err)") }
        XCTAssertTrue(r.err.contains("subnetwork 2/2, seed 43"), r.err)
        // A rerun keeps the finished stages and subnetworks and gives the same evaluation.
        let evalBefore = try String(contentsOfFile: out + "/report/report.json", encoding: .utf8)
        let again = try hcore(["demo", "--quick", "--subnetworks", "2", "--out", "d"], in: empty)
        XCTAssertEqual(again.code, 0, again.err)
        for kept in ["finetune", "activations"] {
            XCTAssertTrue(again.err.contains("] \(kept):") && again.err.contains("kept from an earlier run"), again.err)
        }
        XCTAssertTrue(again.err.contains("subnetwork 2/2, seed 43: 'demo-t"), again.err)
        // finetune, activations, both seeds
        XCTAssertEqual(again.err.components(separatedBy: "kept from an earlier run").count - 1, 4, again.err)
        XCTAssertEqual(try String(contentsOfFile: out + "/report/report.json", encoding: .utf8), evalBefore)
        let other = try hcore(["demo", "--quick", "--subnetworks", "2", "--out", "d", "--seed", "7"], in: empty)
        XCTAssertEqual(other.code, 2, other.err)
        XCTAssertTrue(other.err.contains("other settings"), other.err)
        for f in [
            "model/config.json", "model/model.safetensors", "model/vocab.txt", "activations.safetensors",
            "subnetworks.hcs",
            "eval.json", "core.json", "report/index.html", "report/id-vs-ood.svg", "report/accuracy-sparsity.svg",
            "report/composition.svg", "report/report.json",
        ] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/" + f), f)
        }
        for svg in try FileManager.default.contentsOfDirectory(atPath: out + "/report").filter({ $0.hasSuffix(".svg") })
        {
            XCTAssertEqual(
                svgTextsOutside(try String(contentsOfFile: out + "/report/" + svg, encoding: .utf8)), [],
                "text outside \(svg)")
        }
        let html = try String(contentsOfFile: out + "/report/index.html", encoding: .utf8)
        XCTAssertTrue(html.contains("phenomenon"), "the report states whether the phenomenon is shown")
        let report =
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/report/report.json")))
            as! [String: Any]
        XCTAssertEqual((report["subnetworks"] as! [Any]).count, 2)
        XCTAssertNotNil(report["full"] as? [String: Any])
        // The stored subnetworks carry the metrics eval wrote back.
        let ls = try hcore(["store", "ls", out + "/subnetworks.hcs", "--json"])
        XCTAssertEqual(ls.code, 0, ls.err)
        XCTAssertTrue(ls.out.contains("eval/hans"), ls.out)
        // The fine-tuned folder is usable by every command, and report reruns from the files.
        let p = try hcore([
            "predict", "--model", out + "/model", "The doctor saw the lawyer .", "The lawyer saw the doctor .",
        ])
        XCTAssertEqual(p.code, 0, p.err)
        XCTAssertTrue(p.out.contains("entailment"))
        let rep = try hcore([
            "report", "--eval", out + "/eval.json", "--store", out + "/subnetworks.hcs", "--model", out + "/model",
            "--per-subcase", "4", "--out", out + "/report2",
        ])
        XCTAssertEqual(rep.code, 0, rep.err)
        XCTAssertEqual(
            try String(contentsOfFile: out + "/report2/report.json", encoding: .utf8),
            try String(contentsOfFile: out + "/report/report.json", encoding: .utf8))
        // finetune from the folder (a pretrained start) for one epoch on a slice of the demo data.
        let ft = try hcore([
            "finetune", "--model", out + "/model", "--train", out + "/data/dev.jsonl", "--out", out + "/ft",
            "--num-train-epochs", "1", "--max-train-samples", "64", "--learning-rate", "1e-4",
        ])
        XCTAssertEqual(ft.code, 0, ft.err)
        XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/ft/model.safetensors"))
        let bad = try hcore(["finetune", "--config", "small", "--model", out + "/model", "--train", "x", "--out", "y"])
        XCTAssertEqual(bad.code, 2)
    }
}
