// `store export --hf-folder`: a stored subnetwork as a smaller Hugging Face folder that `hcore predict` runs to the
import Checkpoint
import Foundation
import XCTest

/// `store export --hf-folder`: a stored subnetwork as a smaller Hugging Face folder that `hcore predict` runs to the
/// masked model's logits (mean ablation with the store's activation set); a mask file without a store too.
final class HFExportCLITests: XCTestCase {
    func testExportPredictsAsTheMaskedModel() throws {
        let minilm = repo + "/Tests/Fixtures/models/minilm-nli"
        let store = try makeTestStore("export.hcs", n: 2)
        let out = scratch("export-s1")
        let acts = store + ".acts.safetensors"  // makeTestStore's set
        let r = try hcore(["store", "export", store, "--hf-folder", out, "--model", minilm, "--name", "s1"])
        XCTAssertEqual(r.code, 0, r.err)
        XCTAssert(r.out.contains("heads removed") && r.out.contains("GFLOP"), r.out)
        let show = try JSONValue.parse(try hcore(["store", "show", store, "s1"]).out)
        let mask = scratch("export-s1-mask.json")
        try JSONValue.object([("heads", show.get("heads")!), ("mlps", show.get("mlps")!)]).compact.write(
            toFile: mask, atomically: true, encoding: .utf8)
        let pairs = scratch("export-pairs.jsonl")
        try [
            "{\"text\": \"The doctor saw the lawyer.\", \"text_pair\": \"The lawyer saw the doctor.\"}",
            "{\"text\": \"If the actor ran, the judge waited.\", \"text_pair\": \"The actor ran.\"}",
        ].joined(separator: "\n").write(toFile: pairs, atomically: true, encoding: .utf8)
        let exported = try hcore(["predict", "--model", out, "--jsonl", pairs])
        let masked = try hcore(["predict", "--model", minilm, "--mask", mask, "--activations", acts, "--jsonl", pairs])
        XCTAssertEqual(exported.code, 0, exported.err)
        XCTAssertEqual(masked.code, 0, masked.err)
        func logits(_ s: String) throws -> [Double] {
            try s.split(separator: "\n").flatMap {
                try JSONValue.parse(String($0)).get("logits")!.arrayValue!.map { $0.doubleValue! }
            }
        }
        for (a, b) in zip(try logits(exported.out), try logits(masked.out)) { XCTAssertEqual(a, b, accuracy: 1e-5) }
        let fromMask = try hcore([
            "store", "export", "--hf-folder", scratch("export-mask"), "--model", minilm, "--mask", mask,
            "--zero-ablation",
        ])
        XCTAssertEqual(fromMask.code, 0, fromMask.err)
        let noName = try hcore(["store", "export", store, "--hf-folder", scratch("export-none"), "--model", minilm])
        XCTAssertEqual(noName.code, 2, noName.err)
    }
}
