// A pruned run built and evaluated by the reference's own code (Tests/Fixtures/golden/reference-run, made by
// scripts/make-reference-run-golden.py): hcore, given the same folder — minilm-nli's weights with the fixture's
// log_alpha tensors — and the same activation pickle, prints the same row of the reference's data/eval table:
// the seed, the deterministic soft masks' sparsity, and the accuracy on each HANS case.
import Checkpoint
import Foundation
import TestSupport
import XCTest

final class ReferenceRunCLITests: XCTestCase {
    func testReferenceRunReproducesTheReferencesRow() throws {
        let golden = repo + "/Tests/Fixtures/golden/reference-run"
        let minilm = repo + "/Tests/Fixtures/models/minilm-nli"
        let run = scratch("reference-run/mnli-seed7mean-50")
        try FileManager.default.createDirectory(atPath: run, withIntermediateDirectories: true)
        for f in ["config.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"] {
            try FileManager.default.copyItem(atPath: minilm + "/" + f, toPath: run + "/" + f)
        }
        let logAlpha =
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: golden + "/log_alpha.json")))
            as! [String: Any]
        let source = try SafetensorsFile(path: minilm + "/model.safetensors")
        var w = SafetensorsWriter()
        w.metadata = ["format": "pt"]
        for name in source.names { w.add(name, shape: source.info(name)!.shape, try source.floats(name)) }
        for (l, heads) in (logAlpha["heads"] as! [[Double]]).enumerated() {
            w.add("bert.encoder.layer.\(l).attention.self.log_alpha_heads", shape: [heads.count], heads.map(Float.init))
        }
        for (l, mlp) in (logAlpha["mlps"] as! [Double]).enumerated() {
            w.add("bert.encoder.layer.\(l).output.log_alpha_mlp", shape: [1], [Float(mlp)])
        }
        try w.write(to: run + "/model.safetensors")
        let r = try hcore([
            "eval", "--model", run, "--data", repo + "/Tests/Fixtures/reference/datasets/hans-cases", "--activations",
            golden + "/activations.pkl", "--format", "heuristic-core",
        ])
        XCTAssertEqual(r.code, 0, r.err)
        let table = try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as! [String: [Any]]
        let expected =
            try JSONSerialization.jsonObject(
                with: Data(contentsOf: URL(fileURLWithPath: golden + "/expected-row.json")))
            as! [String: [Any]]
        XCTAssertEqual(table["seed"]?.last as? String, "7")
        for (column, values) in expected where column != "seed" {
            let want = values[0] as! Double
            let got = try XCTUnwrap(table[column]?.last as? Double, column)
            XCTAssertEqual(got, want, accuracy: 1e-9, column)
        }
    }
}
