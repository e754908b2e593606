// `maskImportance` as Michel et al. define head importance: non-negative, each layer's heads of unit L2 norm;
import Checkpoint
import Foundation
import Kernels
import Model
import Optimization
import TestSupport
import Tokenizer
import XCTest

@testable import Prune

/// `maskImportance` as Michel et al. define head importance: non-negative, each layer's heads of unit L2 norm;
/// `signed` keeps the signed mean (same loss, different scores).
final class ImportanceTests: XCTestCase {
    func testMichelNormalisationAndSignedMean() throws {
        let folder = repoRoot + "/Tests/Fixtures/models/tiny-bert"
        let model = try BertModel.load(folder: folder)
        let tok = try BertTokenizer.load(folder: folder)
        let enc = try (0..<24).map {
            try tok.encode("the doctor \($0) saw the lawyer", pair: "the lawyer saw the doctor", maxLength: 32)
        }
        let labels = (0..<24).map { $0 % 2 }
        let ones = MaskValues.ones(layers: model.layerCount, heads: model.headCount)
        let michel = try maskImportance(
            model: model, encodings: enc, labels: labels, masks: ones, ablation: .zero, batchSize: 8)
        for row in michel.heads {
            XCTAssert(row.allSatisfy { $0 >= 0 })
            XCTAssertEqual(row.reduce(0) { $0 + $1 * $1 }.squareRoot(), 1, accuracy: 1e-9)
        }
        let signed = try maskImportance(
            model: model, encodings: enc, labels: labels, masks: ones, ablation: .zero, batchSize: 8, signed: true)
        XCTAssertEqual(signed.batches, 3)
        XCTAssertEqual(signed.loss, michel.loss, accuracy: 1e-12)
        XCTAssertNotEqual(signed.heads, michel.heads)
    }
}
