// L0 pruning on tiny-bert (8 heads + 2 MLPs): reaches the target, beats random subnetworks, reproducible.
import Checkpoint
import Foundation
import Kernels
import Model
import Optimization
import TestSupport
import Tokenizer
import XCTest

@testable import Prune

final class PruneTests: XCTestCase {
    func setup() throws -> (BertModel, [Encoding], [Encoding], MeanActivations) {
        let folder = repoRoot + "/Tests/Fixtures/models/tiny-bert"
        let model = try BertModel.load(folder: folder)
        let tok = try BertTokenizer.load(folder: folder)
        let text = String(
            decoding: try readDataFile(repoRoot + "/data/hans/heuristics_train_set.txt.zst"), as: UTF8.self)
        let rows = text.split(separator: "\n").dropFirst().prefix(600).map {
            $0.split(separator: "\t", omittingEmptySubsequences: false)
        }
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
        let la = (0..<10).map { _ in 0.5 + rng.normal() }
        let u = (0..<10).map { _ in 0.2 + 0.6 * rng.uniform() }
        let lambdas = [0.7, 1.3]
        let t = 0.4
        let o = try pruneObjective(
            model: model, batch: batch, logAlpha: la, u: u, lambdas: lambdas, target: t, activations: acts)
        var checked = 0
        for i in 0..<10 where o.gradLogAlpha[i] != 0 {
            var up = la
            var down = la
            up[i] += 1e-3
            down[i] -= 1e-3
            let fd =
                (try pruneObjective(
                    model: model, batch: batch, logAlpha: up, u: u, lambdas: lambdas, target: t, activations: acts
                ).loss
                    - pruneObjective(
                        model: model, batch: batch, logAlpha: down, u: u, lambdas: lambdas, target: t, activations: acts
                    ).loss) / 2e-3
            XCTAssertEqual(o.gradLogAlpha[i], fd, accuracy: 1e-3 * max(abs(fd), 1e-3), "unit \(i)")
            checked += 1
        }
        XCTAssertGreaterThan(checked, 5)
    }

    /// A run of a few dozen steps to target 0.3, the sparsity warmed up over its first half.
    func shortRun(steps: Int, batchSize: Int, accumulation: Int, seed: UInt64) -> PruneConfig {
        var c = PruneConfig()
        c.targetSparsity = 0.3
        c.sparsityWarmupSteps = steps / 2
        c.maxSteps = steps
        c.warmupSteps = steps / 12
        c.learningRate = 0.3
        c.batchSize = batchSize
        c.gradientAccumulationSteps = accumulation
        c.seed = seed
        return c
    }

    func testSameSeedSameMasks() throws {
        let (model, train, _, acts) = try setup()
        var c = shortRun(steps: 60, batchSize: 8, accumulation: 2, seed: 3)
        let a = try prune(model: model, encodings: train, activations: acts, config: c)
        let b = try prune(model: model, encodings: train, activations: acts, config: c)
        XCTAssertEqual(a.logAlpha, b.logAlpha)
        XCTAssertEqual(a.masks, b.masks)
        c.targetSparsity = 1.0
        XCTAssertThrowsError(try prune(model: model, encodings: train, activations: acts, config: c))
        c.targetSparsity = 0.5
        XCTAssertThrowsError(try prune(model: model, encodings: [], activations: acts, config: c))
    }

    /// The seeds of one `PruneRuns` share the full model's distributions. A run that finds them filled by
    /// another seed's batches (other sizes, other order) ends bit for bit as a run that computes its own:
    /// a row's forward does not depend on the batch it was computed in.
    func testSharedFullModelDistributionsChangeNothing() throws {
        let (model, train, _, acts) = try setup()
        let c = shortRun(steps: 40, batchSize: 7, accumulation: 1, seed: 5)
        let alone = try prune(model: model, encodings: train, activations: acts, config: c)
        let shared = FullModelDistributions(count: train.count)
        var other = c
        other.seed = 9
        other.batchSize = 5
        _ = try prune(model: model, encodings: train, activations: acts, config: other, fullDistributions: shared)
        XCTAssertEqual(shared.filled, 200)  // 40 batches of 5 distinct examples
        let after = try prune(model: model, encodings: train, activations: acts, config: c, fullDistributions: shared)
        XCTAssertGreaterThan(shared.filled, 200)
        XCTAssertEqual(after.logAlpha, alone.logAlpha)
        XCTAssertThrowsError(
            try prune(
                model: model, encodings: Array(train.prefix(10)), activations: acts, config: c,
                fullDistributions: shared))
    }

    /// An interrupted run resumed from its checkpoint (through the JSON file format) ends exactly like the
    /// uninterrupted run; dropout is on (the reference's training mode), so its random stream must resume too.
    func testResumeFromCheckpointEqualsUninterruptedRun() throws {
        let (model, train, _, acts) = try setup()
        var c = PruneConfig()
        c.targetSparsity = 0.4
        c.sparsityWarmupSteps = 20
        c.maxSteps = 40
        c.warmupSteps = 4
        c.learningRate = 0.3
        c.batchSize = 8
        c.gradientAccumulationSteps = 2
        c.seed = 5
        c.dropout = 0.1
        c.initialLogAlpha = 3
        var saved: [PruneState] = []
        let whole = try prune(
            model: model, encodings: train, activations: acts, config: c, checkpointEvery: 15,
            checkpoint: { saved.append($0) })
        XCTAssertEqual(saved.map(\.step), [15, 30])
        let file = try JSONDecoder().decode(PruneState.self, from: try JSONEncoder().encode(saved[0]))
        let resumed = try prune(model: model, encodings: train, activations: acts, config: c, resume: file)
        XCTAssertEqual(resumed.logAlpha, whole.logAlpha)
        XCTAssertEqual(resumed.masks, whole.masks)
        XCTAssertEqual(resumed.history.map(\.kl), whole.history.map(\.kl))
        // Dropout changes the run (it is really applied).
        c.dropout = 0
        XCTAssertNotEqual(
            try prune(model: model, encodings: train, activations: acts, config: c).logAlpha, whole.logAlpha)
    }

    /// --ref-initialize-from: the KL pulls towards another model's distribution. The same weights loaded again
    /// give the very same run; a copy whose classifier bias differs gives another; a reference with another
    /// label count is refused.
    func testReferenceModelIsTheKLTarget() throws {
        let (model, train, _, acts) = try setup()
        var c = PruneConfig()
        c.targetSparsity = 0.3
        c.sparsityWarmupSteps = 3
        c.maxSteps = 4
        c.warmupSteps = 1
        c.batchSize = 8
        c.gradientAccumulationSteps = 1
        c.dropout = 0
        c.initialLogAlpha = 2
        let own = try prune(model: model, encodings: train, activations: acts, config: c)
        let folder = repoRoot + "/Tests/Fixtures/models/tiny-bert"
        let same = try prune(
            model: model, encodings: train, activations: acts, config: c, reference: try BertModel.load(folder: folder))
        XCTAssertEqual(same.history.map(\.kl), own.history.map(\.kl))
        // A copy with the classifier's bias shifted: its distribution differs, so does every KL.
        let dir = NSTemporaryDirectory() + "hcore-ref-model-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for f in ["config.json", "vocab.txt"] {
            try FileManager.default.copyItem(atPath: folder + "/" + f, toPath: dir + "/" + f)
        }
        let weights = try SafetensorsFile(path: folder + "/model.safetensors")
        var w = SafetensorsWriter()
        for n in weights.names {
            var v = try weights.floats(n)
            if n == "classifier.bias" { v[0] += 2 }
            w.add(n, shape: weights.info(n)!.shape, v)
        }
        try Data(w.serialized()).write(to: URL(fileURLWithPath: dir + "/model.safetensors"))
        let other = try prune(
            model: model, encodings: train, activations: acts, config: c, reference: try BertModel.load(folder: dir))
        XCTAssertTrue(
            zip(other.history, own.history).allSatisfy { $0.kl > $1.kl + 1e-4 },
            "\(other.history.map(\.kl)) vs \(own.history.map(\.kl))")
        let minilm = try BertModel.load(folder: repoRoot + "/Tests/Fixtures/models/minilm-nli")
        XCTAssertThrowsError(try prune(model: model, encodings: train, activations: acts, config: c, reference: minilm))
    }

    func testSchedules() {
        var c = PruneConfig()
        c.startSparsity = 0
        c.targetSparsity = 0.5
        c.sparsityWarmupSteps = 100
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
