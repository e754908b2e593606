// Fine-tuning: the weight gradients against central finite differences (with and without dropout), the
// training forward against the inference forward on a real checkpoint, the saved folder round-tripping
// bit-exactly through hcore's loader, and training actually learning a toy rule.
import Checkpoint
import Foundation
import Kernels
import Model
import TestSupport
import Tokenizer
import Train
import XCTest

func tinyConfig() -> BertConfig {
    BertConfig(
        vocabSize: 23, hiddenSize: 16, numHiddenLayers: 2, numAttentionHeads: 2, intermediateSize: 24,
        maxPositionEmbeddings: 16, layerNormEps: 1e-12, labels: ["a", "b", "c"])
}

/// Sequences of ragged lengths with two token types.
func randomBatch(_ rng: inout SplitMix64, sequences: Int, vocab: Int, maxLen: Int) -> TokenBatch {
    var b = TokenBatch()
    for _ in 0..<sequences {
        let n = 2 + Int(rng.next() % UInt64(maxLen - 1))
        let split = 1 + Int(rng.next() % UInt64(n - 1))
        b.append(
            Encoding(
                inputIds: (0..<n).map { _ in Int32(rng.next() % UInt64(vocab)) },
                tokenTypeIds: (0..<n).map { $0 < split ? 0 : 1 }))
    }
    return b
}

final class TrainTests: XCTestCase {
    /// Every tensor's gradient, at a few entries each, against (L(θ+h) − L(θ−h)) / 2h. With dropout (hidden and
    /// attention-probability) the same seed draws the same masks, so the finite difference sees the same function.
    func checkGradients(dropout: Float, attentionDropout: Float? = nil) throws {
        let model = TrainableBert(config: tinyConfig(), seed: 3)
        // Larger weights than the init so that every path carries gradient.
        var init_ = SplitMix64(seed: 9)
        for i in 0..<model.parameterCount { model.params[i] += Float(0.3 * init_.normal()) }
        var rb = SplitMix64(seed: 5)
        let batch = randomBatch(&rb, sequences: 4, vocab: 23, maxLen: 9)
        let labels = [0, 2, 1, 2]
        let drop = StepDropout(hidden: dropout, attention: attentionDropout ?? dropout, seed: 1)
        func loss() throws -> Double {
            try model.trainingStep(batch, labels: labels, dropout: drop, pool: .sized(1)).loss
        }
        model.zeroGradients()
        _ = try model.trainingStep(batch, labels: labels, dropout: drop, pool: .sized(2))
        let analytic = Array(UnsafeBufferPointer(start: model.grads, count: model.parameterCount))
        var pick = SplitMix64(seed: 17)
        var checked = 0
        var worst = 0.0
        for t in model.tensors {
            let n = t.shape.reduce(1, *)
            for _ in 0..<3 {
                var i = t.offset + Int(pick.next() % UInt64(n))
                if t.name.contains("word_embeddings") {
                    i = t.offset + Int(batch.inputIds[0]) * 16 + Int(pick.next() % 16)
                }  // a used row
                let saved = model.params[i]
                let h: Float = 1e-2
                model.params[i] = saved + h
                let up = try loss()
                model.params[i] = saved - h
                let down = try loss()
                model.params[i] = saved
                let fd = (up - down) / Double(2 * h)
                let err = abs(fd - Double(analytic[i]))
                worst = max(worst, err / (abs(fd) + 1e-3))
                XCTAssertLessThan(
                    err, 2e-3 + 0.03 * abs(fd),
                    "\(t.name)[\(i - t.offset)]: analytic \(analytic[i]) vs finite difference \(fd)")
                checked += 1
            }
        }
        XCTAssertEqual(checked, model.tensors.count * 3)
        XCTAssertGreaterThan(analytic.map { abs($0) }.max()!, 1e-3, "gradients must not all vanish")
    }

    func testGradientsMatchFiniteDifferences() throws { try checkGradients(dropout: 0) }
    func testGradientsWithDropoutMatchFiniteDifferences() throws { try checkGradients(dropout: 0.3) }
    func testGradientsWithAttentionDropoutAloneMatchFiniteDifferences() throws {
        try checkGradients(dropout: 0, attentionDropout: 0.3)
    }

    /// The training forward (dropout off) gives the inference forward's logits bit for bit on tiny-bert's real
    /// weights: one composition, the same kernels in the same order.
    func testTrainingForwardEqualsInference() throws {
        let folder = repoRoot + "/Tests/Fixtures/models/tiny-bert"
        let loaded = try BertModel.load(folder: folder)
        let model = try TrainableBert(model: loaded)
        var rb = SplitMix64(seed: 2)
        let batch = randomBatch(&rb, sequences: 5, vocab: loaded.config.vocabSize, maxLen: 12)
        let expected = try loaded.forward(batch, lastLayer: .all)
        let got = try model.trainingStep(batch, labels: [Int](repeating: 0, count: 5), dropout: .off).logits
        XCTAssertEqual(got.map(\.bitPattern), expected.map(\.bitPattern))
        // Every tensor copied: the repacked inference model has the same fingerprint.
        XCTAssertEqual(try model.inferenceModel().fingerprint, loaded.fingerprint)
    }

    /// A fine-tuned folder loads back through hcore's loader bit-exactly: every tensor, the config, the
    /// tokenizer, the logits.
    func testSavedFolderRoundTripsBitExactly() throws {
        let model = TrainableBert(config: tinyConfig(), seed: 4)
        var rb = SplitMix64(seed: 6)
        let batch = randomBatch(&rb, sequences: 16, vocab: 23, maxLen: 10)
        let labels = (0..<16).map { $0 % 3 }
        var c = FinetuneConfig()
        c.epochs = 2
        c.batchSize = 4
        c.learningRate = 1e-2
        let enc = (0..<16).map { s in
            Encoding(
                inputIds: Array(batch.inputIds[batch.offsets[s]..<batch.offsets[s + 1]]),
                tokenTypeIds: Array(batch.tokenTypeIds[batch.offsets[s]..<batch.offsets[s + 1]]))
        }
        try finetune(model, train: enc, labels: labels, config: c)
        let folder = NSTemporaryDirectory() + "hcore-train-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + (5..<23).map { "w\($0)" }
        try model.save(folder: folder, vocabulary: vocab)
        let st = try SafetensorsFile(path: folder + "/model.safetensors")
        XCTAssertEqual(Set(st.names), Set(model.tensors.map(\.name)))
        for t in model.tensors {
            XCTAssertEqual(st.info(t.name)?.shape, t.shape)
            XCTAssertEqual(try st.floats(t.name).map(\.bitPattern), model.values(t.name)!.map(\.bitPattern), t.name)
        }
        let loaded = try BertModel.load(folder: folder)
        XCTAssertEqual(loaded.config, model.config)
        XCTAssertEqual(loaded.fingerprint, try model.inferenceModel().fingerprint)
        XCTAssertEqual(
            try loaded.forward(batch).map(\.bitPattern), try model.inferenceModel().forward(batch).map(\.bitPattern))
        let tok = try BertTokenizer.load(folder: folder)
        XCTAssertEqual(tok.tokenize("w7 W9 zzz"), [7, 9, 1])
    }

    /// Training learns a rule the initial model does not know: label = whether token 5 occurs.
    func testFinetuningLearnsAToyRule() throws {
        let model = TrainableBert(config: tinyConfig(), seed: 8)
        var rb = SplitMix64(seed: 10)
        var enc: [Encoding] = []
        var labels: [Int] = []
        for i in 0..<400 {
            let n = 4 + Int(rb.next() % 6)
            var ids = [Int32(2)] + (1..<n).map { _ in Int32(6 + rb.next() % 17) }
            if i % 2 == 0 { ids[1 + Int(rb.next() % UInt64(n - 1))] = 5 }
            enc.append(Encoding(inputIds: ids, tokenTypeIds: [Int32](repeating: 0, count: n)))
            labels.append(i % 2 == 0 ? 1 : 0)
        }
        let before = try accuracy(of: model, encodings: Array(enc[300...]), labels: Array(labels[300...]))
        var c = FinetuneConfig()
        c.epochs = 8
        c.batchSize = 16
        c.learningRate = 3e-3
        c.dropout = 0
        c.attentionDropout = 0
        let history = try finetune(
            model, train: Array(enc[..<300]), labels: Array(labels[..<300]),
            dev: (Array(enc[300...]), Array(labels[300...])), config: c)
        XCTAssertLessThan(history.last!.loss, history.first!.loss)
        XCTAssertGreaterThan(history.last!.devAccuracy!, 0.95, "accuracy before training \(before)")
    }

    /// The Trainer's step: two batches of 4 accumulated (each scaled by ½) are one batch of 8; --max-steps runs
    /// past the epoch; clipping the global norm really reaches the update (Adam is scale-free, so a norm far
    /// below eps shrinks the step); checkpoints come every --save-steps.
    func testAccumulationMaxStepsClippingAndCheckpoints() throws {
        var rb = SplitMix64(seed: 12)
        let batch = randomBatch(&rb, sequences: 16, vocab: 23, maxLen: 10)
        let labels = (0..<16).map { $0 % 3 }
        let enc = (0..<16).map { s in
            Encoding(
                inputIds: Array(batch.inputIds[batch.offsets[s]..<batch.offsets[s + 1]]),
                tokenTypeIds: Array(batch.tokenTypeIds[batch.offsets[s]..<batch.offsets[s + 1]]))
        }
        func train(batch: Int, accumulation: Int, maxSteps: Int? = nil, clip: Double = 1, saveEvery: Int = 0) throws
            -> (TrainableBert, [FinetuneRecord], [Int])
        {
            let model = TrainableBert(config: tinyConfig(), seed: 4)
            var c = FinetuneConfig()
            c.epochs = 2
            c.batchSize = batch
            c.gradientAccumulationSteps = accumulation
            c.learningRate = 1e-2
            c.dropout = 0
            c.attentionDropout = 0
            c.maxSteps = maxSteps
            c.maxGradNorm = clip
            var saved: [Int] = []
            let h = try finetune(
                model, train: enc, labels: labels, config: c, saveEvery: saveEvery, checkpoint: { saved.append($0) })
            return (model, h, saved)
        }
        let (one, h1, _) = try train(batch: 8, accumulation: 1)
        let (two, h2, _) = try train(batch: 4, accumulation: 2)
        XCTAssertEqual(h1.count, 4)
        XCTAssertEqual(h2.count, 4)
        for (a, b) in zip(h1, h2) { XCTAssertEqual(a.loss, b.loss, accuracy: 1e-5) }
        for t in one.tensors {
            XCTAssertLessThan(maxAbsDiff(one.values(t.name)!, two.values(t.name)!), 1e-5, t.name)
        }
        let (_, long, saved) = try train(batch: 4, accumulation: 1, maxSteps: 9, saveEvery: 4)
        XCTAssertEqual(long.count, 9)
        XCTAssertEqual(long.map(\.epoch), [0, 0, 0, 0, 1, 1, 1, 1, 2])
        XCTAssertEqual(saved, [4, 8])
        let start = TrainableBert(config: tinyConfig(), seed: 4)
        let (clipped, _, _) = try train(batch: 8, accumulation: 1, maxSteps: 1, clip: 1e-12)
        let (free, _, _) = try train(batch: 8, accumulation: 1, maxSteps: 1, clip: 0)
        let w = "bert.encoder.layer.0.attention.self.query.weight"
        let moved = maxAbsDiff(free.values(w)!, start.values(w)!)
        let movedClipped = maxAbsDiff(clipped.values(w)!, start.values(w)!)
        XCTAssertGreaterThan(moved, 1e-3)
        XCTAssertLessThan(movedClipped, moved / 100)
    }
}
