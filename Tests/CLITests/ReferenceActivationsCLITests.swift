// The reference's pickled activations where hcore takes activations: read, and refused by shape for a model of
import Checkpoint
import Foundation
import XCTest

/// The reference's pickled activations where hcore takes activations: read, and refused by shape for a model of
/// another size (mnli.pkl is bert-base's; the fixtures' models are smaller), naming what it expected.
final class ReferenceActivationsCLITests: XCTestCase {
    func testPickleIsReadAndCheckedAgainstTheModel() throws {
        let pkl = repo + "/Tests/Fixtures/reference/activations/mnli.pkl"
        let minilm = repo + "/Tests/Fixtures/models/minilm-nli"
        let mask = scratch("pkl-mask.json")
        try
            "{\"heads\": [\((0..<6).map { _ in "[" + (0..<12).map { $0 % 2 == 0 ? "1" : "0" }.joined(separator: ", ") + "]" }.joined(separator: ", "))], \"mlps\": [1, 1, 1, 1, 1, 1]}"
            .write(toFile: mask, atomically: true, encoding: .utf8)
        let predict = try hcore(["predict", "--model", minilm, "--mask", mask, "--activations", pkl, "a", "b"])
        XCTAssertEqual(predict.code, 4, predict.err)
        XCTAssert(
            predict.err.contains("avg_head") && predict.err.contains("[6, 12, 32]")
                && predict.err.contains("[12, 12, 64]"), predict.err)
        let store = scratch("pkl.hcs")
        XCTAssertEqual(try hcore(["store", "create", store, "--model", minilm]).code, 0)
        let add = try hcore(["store", "add-activations", store, "--name", "mnli", "--file", pkl])
        XCTAssertEqual(add.code, 4, add.err)
        XCTAssert(add.err.contains("not a mean-activation set for a 6×12 model"), add.err)
    }
}
