// A physically pruned model (config pruned_heads; Q/K/V rows and W_O columns absent), made by transformers 4.x's
// prune_heads (scripts/make-pruned-fixture.py), loads and gives transformers' logits; a checkpoint whose tensors
// disagree with its pruned_heads is refused naming the tensor and both shapes.
import Checkpoint
import Foundation
import Model
import TestSupport
import Tokenizer
import XCTest

final class PrunedHeadsTests: XCTestCase {
    let fixtures = repositoryRoot.path + "/Tests/Fixtures/models/"

    /// The fixture folder completed with tiny-bert's word embeddings and tokenizer (left out of the fixture: unchanged by pruning).
    func prunedFolder(config: String? = nil) throws -> String {
        let dir = NSTemporaryDirectory() + "hcore-pruned-\(getpid())-\(UUID().uuidString.prefix(6))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let pruned = try SafetensorsFile(path: fixtures + "tiny-bert-pruned/model.safetensors")
        let tiny = try SafetensorsFile(path: fixtures + "tiny-bert/model.safetensors")
        var w = SafetensorsWriter()
        for name in pruned.names { w.add(name, shape: pruned.info(name)!.shape, try pruned.floats(name)) }
        w.add(
            "bert.embeddings.word_embeddings.weight", shape: tiny.info("bert.embeddings.word_embeddings.weight")!.shape,
            try tiny.floats("bert.embeddings.word_embeddings.weight"))
        try w.write(to: dir + "/model.safetensors")
        try (config ?? String(contentsOfFile: fixtures + "tiny-bert-pruned/config.json", encoding: .utf8)).write(
            toFile: dir + "/config.json", atomically: true, encoding: .utf8)
        for f in ["vocab.txt", "tokenizer_config.json", "special_tokens_map.json"] {
            try FileManager.default.copyItem(atPath: fixtures + "tiny-bert/" + f, toPath: dir + "/" + f)
        }
        return dir
    }

    func testTransformersPrunedModelGivesItsLogits() throws {
        let dir = try prunedFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let model = try BertModel.load(folder: dir)
        XCTAssertEqual(model.config.prunedHeads, [0: [1, 3], 1: [0]])
        let golden = try JSONValue.parse(
            try String(contentsOfFile: fixtures + "tiny-bert-pruned/logits.json", encoding: .utf8))
        for c in golden.get("cases")!.arrayValue! {
            let ids = c.get("input_ids")!.arrayValue!.map { Int32($0.intValue!) }
            let sep = ids.firstIndex(of: 102).map { $0 + 1 } ?? ids.count
            let types = ids.indices.map { Int32($0 < sep ? 0 : 1) }
            let got = try model.forward(TokenBatch([Encoding(inputIds: ids, tokenTypeIds: types)]))
            let want = c.get("logits")!.arrayValue!.map { Float($0.doubleValue!) }
            for (g, w) in zip(got, want) { XCTAssertEqual(g, w, accuracy: 1e-5, c.get("text")!.compact) }
        }
        // The same function with the absent heads' zero contribution computed (the general path, no plan).
        let e = Encoding(inputIds: [101, 7592, 102], tokenTypeIds: [0, 0, 0])
        let general = try model.forward(TokenBatch([e]), soft: (MaskValues.ones(layers: 2, heads: 4), .zero))
        for (a, b) in zip(try model.forward(TokenBatch([e])), general) { XCTAssertEqual(a, b, accuracy: 1e-5) }
    }

    func testTensorsThatDisagreeWithPrunedHeadsAreNamed() throws {
        let config = try String(contentsOfFile: fixtures + "tiny-bert-pruned/config.json", encoding: .utf8)
            .replacingOccurrences(of: "\"1\": [\n      0\n    ]", with: "\"1\": [\n      0, 2\n    ]")
        XCTAssertTrue(config.contains("0, 2"), "the fixture's config changed shape; update this test")
        let dir = try prunedFolder(config: config)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        XCTAssertThrowsError(try BertModel.load(folder: dir)) { e in
            XCTAssert(
                "\(e)".contains("encoder.layer.1.attention.self.query.weight") && "\(e)".contains("[16, 32]")
                    && "\(e)".contains("[24, 32]"), "\(e)")
        }
        let bad = try prunedFolder(
            config: config.replacingOccurrences(of: "\"0, 2\"", with: "").replacingOccurrences(of: "0, 2", with: "0, 9")
        )
        defer { try? FileManager.default.removeItem(atPath: bad) }
        XCTAssertThrowsError(try BertModel.load(folder: bad)) { XCTAssert("\($0)".contains("pruned_heads"), "\($0)") }
    }
}
