// Fine-tuning with dropout against transformers' training-mode forward and backward
// (Tests/Fixtures/golden/dropout-training, made by scripts/make-dropout-golden.py): the same dropout masks — hcore
// draws them, the script lays them into transformers' modules — give the same loss, logits and every gradient.
import Checkpoint
import Foundation
import Model
import TestSupport
import Tokenizer
import Train
import XCTest

final class DropoutGoldenTests: XCTestCase {
    func testTrainingStepWithDropoutEqualsTransformers() throws {
        let folder = fixtures + "/golden/dropout-training"
        let batch =
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: folder + "/batch.json")))
            as! [String: Any]
        let ids = batch["input_ids"] as! [[Int]]
        let types = batch["token_type_ids"] as! [[Int]]
        let labels = batch["labels"] as! [Int]
        let p = Float(batch["dropout"] as! Double)
        let model = try TrainableBert(model: try BertModel.load(folder: folder + "/model"))
        let tokens = TokenBatch(
            zip(ids, types).map { Encoding(inputIds: $0.0.map(Int32.init), tokenTypeIds: $0.1.map(Int32.init)) })
        model.zeroGradients()
        let step = try model.trainingStep(
            tokens, labels: labels, dropout: StepDropout(hidden: p, attention: p, seed: UInt64(batch["seed"] as! Int)))
        XCTAssertEqual(step.loss, batch["loss"] as! Double, accuracy: 1e-5)
        let golden = try SafetensorsFile(path: folder + "/outputs.safetensors")
        assertClose(step.logits, try golden.floats("logits"), bound: 1e-5, "logits")
        var compared = 0
        for t in model.tensors {
            let want = try golden.floats("grad." + t.name)
            let got = Array(UnsafeBufferPointer(start: model.grads + t.offset, count: want.count))
            let scale = max(1e-3, want.map { abs($0) }.max()!)
            XCTAssertLessThan(maxAbsDiff(got, want) / scale, 1e-4, t.name)
            compared += 1
        }
        XCTAssertEqual(compared, model.tensors.count)
        // The masks matter: without attention-probability dropout the loss is another.
        let without = try model.trainingStep(
            tokens, labels: labels, dropout: StepDropout(hidden: p, attention: 0, seed: UInt64(batch["seed"] as! Int)))
        XCTAssertGreaterThan(abs(without.loss - step.loss), 1e-3)
    }
}
