// A subnetwork exported as a Hugging Face folder computes what the masked model computes: binary masks with
// mean and with zero ablation, a layer with every head removed, a pruned MLP; the folder's config lists the
// removed heads and its tensors have their pruned shapes.
import Checkpoint
import Foundation
import Model
import TestSupport
import Tokenizer
import Train
import XCTest

final class SubnetworkExportTests: XCTestCase {
    func testExportEqualsTheMaskedModel() throws {
        let folder = repositoryRoot.path + "/Tests/Fixtures/models/tiny-bert"
        let model = try BertModel.load(folder: folder)
        let tok = try BertTokenizer.load(folder: folder)
        let pairs = [
            ("The doctor saw the lawyer.", "The lawyer saw the doctor."), ("A man is eating food.", "Nobody eats."),
            ("hello there", "general kenobi"),
        ]
        let enc = try pairs.map { try tok.encode($0.0, pair: $0.1, maxLength: 64) }
        let acc = ActivationAccumulator(model: model)
        _ = try model.encode(TokenBatch(enc), observer: acc)
        let acts = acc.result(fingerprint: model.fingerprint)
        // Layer 0 keeps heads 0 and 2 and loses its MLP; layer 1 loses every head.
        let masks = MaskValues(heads: [[1, 0, 1, 0], [0, 0, 0, 0]], mlps: [0, 1])
        for (name, ablation) in [("mean", Ablation.mean(acts)), ("zero", .zero)] {
            let out = NSTemporaryDirectory() + "hcore-export-\(getpid())-\(name)"
            defer { try? FileManager.default.removeItem(atPath: out) }
            let summary = try exportSubnetwork(model: model, masks: masks, ablation: ablation, to: out)
            XCTAssertEqual(summary.removedHeads, 5)  // 2 in layer 0; 3 of 4 in layer 1 (one stays, zeroed)
            XCTAssertEqual(summary.zeroedMLPs, 1)
            XCTAssertLessThan(summary.bytes, summary.fullBytes)
            let exported = try BertModel.load(folder: out)
            XCTAssertEqual(exported.config.prunedHeads, [0: [1, 3], 1: [1, 2, 3]])
            let st = try SafetensorsFile(path: out + "/model.safetensors")
            XCTAssertEqual(st.info("bert.encoder.layer.0.attention.self.query.weight")?.shape, [16, 32])
            XCTAssertEqual(st.info("bert.encoder.layer.1.attention.output.dense.weight")?.shape, [32, 8])
            let want = try model.forward(
                TokenBatch(enc), plan: try ExecutionPlan.compile(model: model, masks: masks, ablation: ablation))
            let general = try model.forward(TokenBatch(enc), soft: (masks, ablation))
            let got = try exported.forward(TokenBatch(enc))
            XCTAssertGreaterThan(
                zip(want, try model.forward(TokenBatch(enc))).map { abs($0 - $1) }.max()!, 1e-3, "the masks must matter"
            )
            for (g, w) in zip(got, want) { XCTAssertEqual(g, w, accuracy: 1e-5, name) }
            for (g, w) in zip(got, general) { XCTAssertEqual(g, w, accuracy: 1e-5, name) }
            XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/vocab.txt"))
            // Every head in place (transformers 5): full shapes, no pruned_heads, the same logits.
            let kept = out + "-shapes"
            defer { try? FileManager.default.removeItem(atPath: kept) }
            _ = try exportSubnetwork(model: model, masks: masks, ablation: ablation, to: kept, keepShapes: true)
            let same = try BertModel.load(folder: kept)
            XCTAssertEqual(same.config.prunedHeads, [:])
            XCTAssertEqual(
                try SafetensorsFile(path: kept + "/model.safetensors").info(
                    "bert.encoder.layer.1.attention.output.dense.weight")?.shape, [32, 32])
            for (g, w) in zip(try same.forward(TokenBatch(enc)), want) {
                XCTAssertEqual(g, w, accuracy: 1e-5, name + " keeping shapes")
            }
        }
        XCTAssertThrowsError(
            try exportSubnetwork(
                model: model, masks: MaskValues(heads: [[1, 0.5, 1, 1], [1, 1, 1, 1]], mlps: [1, 1]), ablation: .zero,
                to: "/tmp/x")
        ) {
            XCTAssert("\($0)".contains("binary"), "\($0)")
        }
    }
}
