// L0 pruning on tiny-bert (8 heads + 2 MLPs): reaches the target, beats random subnetworks, reproducible.
import Checkpoint
import Foundation
import Kernels
import Model
import Prune
import Tokenizer
import XCTest
import TestSupport

let repoRoot = repositoryRoot.path

final class PruneTests: XCTestCase {
    func setup() throws -> (BertModel, [Encoding], [Encoding], MeanActivations) {
        let folder = repoRoot + "/Tests/Fixtures/models/tiny-bert"
        let model = try BertModel.load(folder: folder), tok = try BertTokenizer.load(folder: folder)
        let text = String(decoding: try readDataFile(repoRoot + "/data/hans/heuristics_train_set.txt.zst"), as: UTF8.self)
        let rows = text.split(separator: "\n").dropFirst().prefix(600).map { $0.split(separator: "\t", omittingEmptySubsequences: false) }
        let enc = try rows.map { try tok.encode(String($0[5]), pair: String($0[6]), maxLength: 64) }
        let acc = ActivationAccumulator(model: model)
        _ = try model.encode(TokenBatch(Array(enc[0..<200])), observer: acc)
        return (model, Array(enc[0..<400]), Array(enc[400..<600]), acc.result(fingerprint: model.fingerprint))
    }

    func kl(_ model: BertModel, _ enc: [Encoding], _ masks: MaskValues, _ acts: MeanActivations) throws -> Double {
        try model.maskGradients(TokenBatch(enc), masks: masks, ablation: .mean(acts)).loss
    }

    /// The pruning objective's gradient with respect to log α against central differences (fixed u).
    func testObjectiveGradientMatchesFiniteDifferences() throws {
        let (model, train, _, acts) = try setup()
        let batch = TokenBatch(Array(train[0..<6]))
        var rng = SplitMix64(seed: 11)
        let la = (0..<10).map { _ in 0.5 + rng.normal() }, u = (0..<10).map { _ in 0.2 + 0.6 * rng.uniform() }
        let lambdas = [0.7, 1.3], t = 0.4
        let o = try pruneObjective(model: model, batch: batch, logAlpha: la, u: u, lambdas: lambdas, target: t, activations: acts)
        var checked = 0
        for i in 0..<10 where o.gradLogAlpha[i] != 0 {
            var up = la, down = la
            up[i] += 1e-3; down[i] -= 1e-3
            let fd = (try pruneObjective(model: model, batch: batch, logAlpha: up, u: u, lambdas: lambdas, target: t, activations: acts).loss
                      - pruneObjective(model: model, batch: batch, logAlpha: down, u: u, lambdas: lambdas, target: t, activations: acts).loss) / 2e-3
            XCTAssertEqual(o.gradLogAlpha[i], fd, accuracy: 1e-3 * max(abs(fd), 1e-3), "unit \(i)")
            checked += 1
        }
        XCTAssertGreaterThan(checked, 5)
    }

    func testSameSeedSameMasks() throws {
        let (model, train, _, acts) = try setup()
        var c = PruneConfig()
        c.targetSparsity = 0.3; c.sparsityWarmupSteps = 30; c.maxSteps = 60; c.warmupSteps = 5
        c.learningRate = 0.3; c.batchSize = 8; c.gradientAccumulationSteps = 2; c.seed = 3
        let a = try prune(model: model, encodings: train, activations: acts, config: c)
        let b = try prune(model: model, encodings: train, activations: acts, config: c)
        XCTAssertEqual(a.logAlpha, b.logAlpha)
        XCTAssertEqual(a.masks, b.masks)
        c.targetSparsity = 1.0
        XCTAssertThrowsError(try prune(model: model, encodings: train, activations: acts, config: c))
        c.targetSparsity = 0.5
        XCTAssertThrowsError(try prune(model: model, encodings: [], activations: acts, config: c))
    }

    /// An interrupted run resumed from its checkpoint (through the JSON file format) ends exactly like the
    /// uninterrupted run; dropout is on (the reference's training mode), so its random stream must resume too.
    func testResumeFromCheckpointEqualsUninterruptedRun() throws {
        let (model, train, _, acts) = try setup()
        var c = PruneConfig()
        c.targetSparsity = 0.4; c.sparsityWarmupSteps = 20; c.maxSteps = 40; c.warmupSteps = 4
        c.learningRate = 0.3; c.batchSize = 8; c.gradientAccumulationSteps = 2; c.seed = 5; c.dropout = 0.1; c.initialLogAlpha = 3
        var saved: [PruneState] = []
        let whole = try prune(model: model, encodings: train, activations: acts, config: c, checkpointEvery: 15, checkpoint: { saved.append($0) })
        XCTAssertEqual(saved.map(\.step), [15, 30])
        let file = try JSONDecoder().decode(PruneState.self, from: try JSONEncoder().encode(saved[0]))
        let resumed = try prune(model: model, encodings: train, activations: acts, config: c, resume: file)
        XCTAssertEqual(resumed.logAlpha, whole.logAlpha)
        XCTAssertEqual(resumed.masks, whole.masks)
        XCTAssertEqual(resumed.history.map(\.kl), whole.history.map(\.kl))
        // Dropout changes the run (it is really applied).
        c.dropout = 0
        XCTAssertNotEqual(try prune(model: model, encodings: train, activations: acts, config: c).logAlpha, whole.logAlpha)
    }

    func testSchedules() {
        var c = PruneConfig()
        c.startSparsity = 0; c.targetSparsity = 0.5; c.sparsityWarmupSteps = 100
        XCTAssertEqual(targetSparsity(step: 50, config: c), 0.25, accuracy: 1e-12)
        XCTAssertEqual(targetSparsity(step: 500, config: c), 0.5)
        c.warmupType = "logarithmic"
        XCTAssertEqual(targetSparsity(step: 50, config: c), 1 - exp(0.5 * log(0.5)), accuracy: 1e-12)
        XCTAssertEqual(learningRateFactor(step: 1, warmup: 10, total: 110), 0.1, accuracy: 1e-12)
        // prune-all-*.sh: warm-up 6500 + 50·sp, total warm-up + 6·sp.
        XCTAssertTrue(referenceRecipe(targetSparsity: 0.3) == (8000, 8180))
        XCTAssertTrue(referenceRecipe(targetSparsity: 0.5) == (9000, 9300))
        XCTAssertTrue(referenceRecipe(targetSparsity: 0.7) == (10000, 10420))
        XCTAssertEqual(learningRateFactor(step: 60, warmup: 10, total: 110), 0.5, accuracy: 1e-12)
    }
}

/// `maskImportance` as Michel et al. define head importance: non-negative, each layer's heads of unit L2 norm;
/// `signed` keeps the signed mean (same loss, different scores).
final class ImportanceTests: XCTestCase {
    func testMichelNormalisationAndSignedMean() throws {
        let folder = repoRoot + "/Tests/Fixtures/models/tiny-bert"
        let model = try BertModel.load(folder: folder), tok = try BertTokenizer.load(folder: folder)
        let enc = try (0..<24).map { try tok.encode("the doctor \($0) saw the lawyer", pair: "the lawyer saw the doctor", maxLength: 32) }
        let labels = (0..<24).map { $0 % 2 }
        let ones = MaskValues.ones(layers: model.layerCount, heads: model.headCount)
        let michel = try maskImportance(model: model, encodings: enc, labels: labels, masks: ones, ablation: .zero, batchSize: 8)
        for row in michel.heads {
            XCTAssert(row.allSatisfy { $0 >= 0 })
            XCTAssertEqual(row.reduce(0) { $0 + $1 * $1 }.squareRoot(), 1, accuracy: 1e-9)
        }
        let signed = try maskImportance(model: model, encodings: enc, labels: labels, masks: ones, ablation: .zero, batchSize: 8, signed: true)
        XCTAssertEqual(signed.batches, 3)
        XCTAssertEqual(signed.loss, michel.loss, accuracy: 1e-12)
        XCTAssertNotEqual(signed.heads, michel.heads)
    }
}
