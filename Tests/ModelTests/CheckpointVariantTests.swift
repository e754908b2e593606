// Real checkpoints name their tensors in several ways; all must load to the same model.
import Checkpoint
import Foundation
import Model
import TestSupport
import XCTest

final class CheckpointVariantTests: XCTestCase {
    /// Rewrites tiny-bert's safetensors with `rename` applied to every name, in a temporary folder.
    func variantFolder(_ tag: String, dropClassifier: Bool = false, rename: (String) -> String) throws -> String {
        let src = try SafetensorsFile(path: fixtures + "/models/tiny-bert/model.safetensors")
        var w = SafetensorsWriter()
        for n in src.names {
            if dropClassifier && n.hasPrefix("classifier.") { continue }
            w.add(rename(n), shape: src.info(n)!.shape, try src.floats(n))
        }
        let dir = NSTemporaryDirectory() + "hcore-variant-\(tag)-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try w.write(to: dir + "/model.safetensors")
        for f in ["config.json", "vocab.txt"] {
            try? FileManager.default.removeItem(atPath: dir + "/" + f)
            try FileManager.default.copyItem(atPath: fixtures + "/models/tiny-bert/" + f, toPath: dir + "/" + f)
        }
        return dir
    }

    func testOldLayerNormNamesLoadIdentically() throws {
        let reference = try BertModel.load(folder: fixtures + "/models/tiny-bert")
        let dir = try variantFolder("gamma") {
            $0.replacingOccurrences(of: "LayerNorm.weight", with: "LayerNorm.gamma").replacingOccurrences(
                of: "LayerNorm.bias", with: "LayerNorm.beta")
        }
        let m = try BertModel.load(folder: dir)
        XCTAssertEqual(m.fingerprint, reference.fingerprint)
        let golden = try GoldenOutputs("tiny-bert")
        let batch = TokenBatch(golden.batches[0].map(golden.encoding))
        XCTAssertEqual(try m.forward(batch), try reference.forward(batch))
    }

    func testBareBertModelWithoutPrefixOrClassifier() throws {
        let reference = try BertModel.load(folder: fixtures + "/models/tiny-bert")
        let dir = try variantFolder("bare", dropClassifier: true) {
            $0.hasPrefix("bert.") ? String($0.dropFirst(5)) : $0
        }
        let m = try BertModel.load(folder: dir)
        XCTAssertNil(m.classifier)
        XCTAssertEqual(m.parameterCount, reference.parameterCount - (2 * 32 + 2))
        let golden = try GoldenOutputs("tiny-bert")
        let batch = TokenBatch(golden.batches[0].map(golden.encoding))
        XCTAssertThrowsError(try m.forward(batch)) { XCTAssert("\($0)".contains("no classifier")) }
        // The encoder is the same: compare final hidden states.
        let a = try m.encode(batch)
        let b = try reference.encode(batch)
        defer {
            a.deallocate()
            b.deallocate()
        }
        for i in 0..<(batch.tokenCount * 32) { XCTAssertEqual(a[i], b[i]) }
    }

    func testMissingAndMisshapenTensorsNamed() throws {
        let dir = try variantFolder("missing") {
            $0 == "bert.encoder.layer.1.output.dense.bias" ? "something.else" : $0
        }
        XCTAssertThrowsError(try BertModel.load(folder: dir)) {
            XCTAssert("\($0)".contains("bert.encoder.layer.1.output.dense.bias"), "\($0)")
        }
        XCTAssertThrowsError(try BertModel.load(folder: "/nonexistent-model")) {
            XCTAssert("\($0)".contains("not a folder"))
        }
    }
}
