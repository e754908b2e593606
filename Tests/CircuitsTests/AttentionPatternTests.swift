// Attention patterns against transformers' output_attentions (Tests/Fixtures/attention, made by
import Checkpoint
import Eval
import Foundation
import Kernels
import Model
import Store
import TestSupport
import Tokenizer
import XCTest

@testable import Circuits

/// Attention patterns against transformers' output_attentions (Tests/Fixtures/attention, made by
/// scripts/make-attention-fixture.py): every layer, head, query and key of one pair.
final class AttentionPatternTests: XCTestCase {
    func testEqualsTransformersOutputAttentions() throws {
        let folder = repoRoot + "/Tests/Fixtures/models/minilm-nli"
        let model = try BertModel.load(folder: folder)
        let tok = try BertTokenizer.load(folder: folder)
        let fixture =
            try JSONSerialization.jsonObject(
                with: Data(contentsOf: URL(fileURLWithPath: repoRoot + "/Tests/Fixtures/attention/minilm-nli.json")))
            as! [String: Any]
        let e = try tok.encode(fixture["text"] as! String, pair: fixture["text_pair"] as? String, maxLength: 128)
        XCTAssertEqual(e.inputIds.map(Int.init), fixture["input_ids"] as! [Int])
        let batch = TokenBatch([e])
        let p = AttentionPatterns(
            tokens: e.inputIds.map(tok.token), sequence: 0, of: batch, patterns: try model.attentionPatterns(batch),
            heads: model.headCount)
        let want = fixture["attentions"] as! [[[[Double]]]]
        var worst = 0.0
        for l in 0..<6 {
            for h in 0..<12 {
                for i in 0..<p.length {
                    for j in 0..<p.length {
                        worst = max(
                            worst, abs(Double(p.weight(layer: l, head: h, query: i, key: j)) - want[l][h][i][j]))
                    }
                }
            }
        }
        XCTAssertLessThan(worst, 1e-5)
        XCTAssertTrue(p.svg(layer: 2, head: 5).contains("a2.h5"))
        XCTAssertEqual(p.npy.count, 128 + 6 * 12 * p.length * p.length * 4)
    }
}
