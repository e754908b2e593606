// Mask gradients against Tests/Fixtures/golden/minilm-nli_gradients (autograd in float64; GOLDEN-README.md §5:
// |Δ| ≤ 1e-6 + 1e-3·|ref| per entry, loss within 1e-6) and against finite differences on tiny-bert.
import Checkpoint
import Foundation
import Model
import Prune
import TestSupport
import XCTest

final class MaskGradientTests: XCTestCase {
    /// tiny-bert, six golden sequences, fractional masks and made-up mean activations: the shared setup of
    /// the finite-difference and equivalence tests below.
    func tinySetup() throws -> (BertModel, TokenBatch, MeanActivations) {
        let golden = try GoldenOutputs("tiny-bert")
        return (
            try cachedModel(fixtures + "/models/tiny-bert"),
            TokenBatch(golden.batches[0].prefix(6).map(golden.encoding)),
            MeanActivations(
                avgHead: (0..<(2 * 4 * 8)).map { Float($0 % 7) * 0.05 - 0.1 },
                avgMLP: (0..<64).map { Float($0 % 5) * 0.1 - 0.2 })
        )
    }
    let tinyMasks = MaskValues(heads: [[0.9, 0.3, 0.7, 0.5], [0.6, 0.8, 0.2, 1.0]], mlps: [0.7, 0.4])

    /// With every mask at 1 and no dropout the masked pass is the full model: its KL to the full model's
    /// distribution is exactly 0 and so is every mask gradient (one composition computes both, bit for bit), on
    /// MiniLM's golden batches, whose layer 0 takes the repeated-row path, and on tiny-bert.
    func testKLIsExactlyZeroWithEveryMaskAtOne() throws {
        let golden = try GoldenOutputs("minilm-nli")
        let model = try cachedModel(try minilmFolder())
        let ones = MaskValues.ones(layers: model.layerCount, heads: model.headCount)
        let avg = try PruningGolden().activations()
        for rows in golden.batches {
            let r = try model.maskGradients(TokenBatch(rows.map(golden.encoding)), masks: ones, ablation: .mean(avg))
            XCTAssertEqual(r.loss, 0)
            XCTAssertEqual(Set(r.heads.joined() + r.mlps), [0])
        }
        let (tiny, batch, acts) = try tinySetup()
        let r = try tiny.maskGradients(batch, masks: .ones(layers: 2, heads: 4), ablation: .mean(acts))
        XCTAssertEqual(r.loss, 0)
    }

    func testGoldenMaskGradients() throws {
        let model = try cachedModel(try minilmFolder())
        let golden = try GoldenOutputs("minilm-nli")
        let pruning = try PruningGolden()
        let g = try SafetensorsFile(path: fixtures + "/golden/minilm-nli_gradients.safetensors")
        let avg = try pruning.activations()
        var worst = 0.0
        for set in ["d_random50_mean", "f_fractional_mean"] {
            let masks = try pruning.masks(set)
            for (b, rows) in golden.batches.enumerated() {
                let batch = TokenBatch(rows.map(golden.encoding))
                let r = try model.maskGradients(batch, masks: masks, ablation: .mean(avg))
                let wantLoss = Double(try g.floats("\(set).batch\(b).loss")[0])
                XCTAssertEqual(r.loss, wantLoss, accuracy: 1e-6, "\(set) batch \(b) loss")
                let wantHeads = try g.floats("\(set).batch\(b).grad_head_mask")
                let wantMLP = try g.floats("\(set).batch\(b).grad_mlp_mask")
                for l in 0..<6 {
                    for h in 0..<12 {
                        let want = Double(wantHeads[l * 12 + h])
                        let got = r.heads[l][h]
                        XCTAssertLessThanOrEqual(
                            abs(got - want), 1e-6 + 1e-3 * abs(want), "\(set) batch \(b) head (\(l),\(h))")
                        worst = max(worst, abs(got - want))
                    }
                    let want = Double(wantMLP[l])
                    XCTAssertLessThanOrEqual(
                        abs(r.mlps[l] - want), 1e-6 + 1e-3 * abs(want), "\(set) batch \(b) mlp \(l)")
                }
            }
        }
        print("mask gradients: max |Δ| vs autograd = \(worst)")
    }

    /// Central differences of the loss on tiny-bert (zero and mean ablation, cross-entropy too).
    func testFiniteDifferences() throws {
        let (model, batch, acts) = try tinySetup()
        var masks = tinyMasks
        for (ablation, objective) in [
            (Ablation.zero, ImportanceObjective.kl), (.mean(acts), .kl),
            (.mean(acts), .crossEntropy(labels: [0, 1, 1, 0, 1, 0])),
        ] {
            let r = try model.maskGradients(batch, masks: masks, ablation: ablation, objective: objective)
            func loss(_ m: MaskValues) throws -> Double {
                try model.maskGradients(batch, masks: m, ablation: ablation, objective: objective).loss
            }
            let eps: Float = 1e-2
            for (l, h) in [(0, 0), (0, 3), (1, 1), (1, 2)] {
                var up = masks
                var down = masks
                up.heads[l][h] += eps
                down.heads[l][h] -= eps
                let fd = (try loss(up) - loss(down)) / Double(2 * eps)
                XCTAssertEqual(r.heads[l][h], fd, accuracy: 0.03 * abs(fd) + 3e-5, "head (\(l),\(h)) \(objective)")
            }
            for l in 0..<2 {
                var up = masks
                var down = masks
                up.mlps[l] += eps
                down.mlps[l] -= eps
                let fd = (try loss(up) - loss(down)) / Double(2 * eps)
                XCTAssertEqual(r.mlps[l], fd, accuracy: 0.03 * abs(fd) + 3e-5, "mlp \(l) \(objective)")
            }
        }
        masks.heads[0][0] = 2
        XCTAssertThrowsError(try model.maskGradients(batch, masks: masks, ablation: .zero))
    }

    /// With the reference's training-mode dropout on, the same seed draws the same masks, so central
    /// differences see one function; the analytic gradient must match them (and differ from dropout off).
    func testFiniteDifferencesWithDropout() throws {
        let (model, batch, acts) = try tinySetup()
        let masks = tinyMasks
        func run(_ m: MaskValues, _ p: Float) throws -> MaskGradients {
            try model.maskGradients(
                batch, masks: m, ablation: .mean(acts), objective: .crossEntropy(labels: [0, 1, 1, 0, 1, 0]),
                dropout: p, dropoutSeed: 99)
        }
        let r = try run(masks, 0.3)
        let off = try run(masks, 0)
        XCTAssertNotEqual(r.loss, off.loss, "dropout must change the subnetwork's output")
        try assertMatchesCentralDifferences(r, at: masks, label: "hidden dropout") { try run($0, 0.3).loss }
    }

    /// `r`'s mask gradients at four heads and both MLPs of tiny-bert against central differences of `loss`.
    func assertMatchesCentralDifferences(
        _ r: MaskGradients, at masks: MaskValues, label: String, loss: (MaskValues) throws -> Double
    ) throws {
        let eps: Float = 1e-2
        for (l, h) in [(0, 0), (0, 3), (1, 1), (1, 2)] {
            var up = masks
            var down = masks
            up.heads[l][h] += eps
            down.heads[l][h] -= eps
            let fd = (try loss(up) - loss(down)) / Double(2 * eps)
            XCTAssertEqual(r.heads[l][h], fd, accuracy: 0.03 * abs(fd) + 3e-5, "head (\(l),\(h)) \(label)")
        }
        for l in 0..<2 {
            var up = masks
            var down = masks
            up.mlps[l] += eps
            down.mlps[l] -= eps
            let fd = (try loss(up) - loss(down)) / Double(2 * eps)
            XCTAssertEqual(r.mlps[l], fd, accuracy: 0.03 * abs(fd) + 3e-5, "mlp \(l) \(label)")
        }
    }

    /// Attention-probability dropout (the reference's attention_probs_dropout_prob in training mode), alone and
    /// with hidden dropout: at a fixed seed the multipliers are fixed, so central differences see one function.
    func testFiniteDifferencesWithAttentionDropout() throws {
        let (model, batch, acts) = try tinySetup()
        let masks = tinyMasks
        for hidden: Float in [0, 0.2] {
            func run(_ m: MaskValues, _ p: Float) throws -> MaskGradients {
                try model.maskGradients(
                    batch, masks: m, ablation: .mean(acts), objective: .crossEntropy(labels: [0, 1, 1, 0, 1, 0]),
                    dropout: hidden, attentionDropout: p, dropoutSeed: 77)
            }
            let r = try run(masks, 0.3)
            let off = try run(masks, 0)
            XCTAssertNotEqual(r.loss, off.loss, "attention dropout must change the subnetwork's output")
            try assertMatchesCentralDifferences(r, at: masks, label: "attention dropout, hidden dropout \(hidden)") {
                try run($0, 0.3).loss
            }
        }
    }

    /// Pruning caches the full model's distribution per example: the cached target must give exactly what
    /// `.kl` computes, and a row must not depend on the other sequences of its batch.
    func testCachedFullModelTargetIsExact() throws {
        let (model, batch, _) = try tinySetup()
        let masks = tinyMasks
        let golden = try GoldenOutputs("tiny-bert")
        let encodings = golden.batches[0].prefix(6).map(golden.encoding)  // the sequences of `batch`
        let together = try model.fullModelProbabilities(batch)
        for (i, e) in encodings.enumerated() {
            XCTAssertEqual(try model.fullModelProbabilities(TokenBatch([e]))[0], together[i], "row \(i)")
        }
        let a = try model.maskGradients(batch, masks: masks, ablation: .zero, objective: .kl)
        let b = try model.maskGradients(
            batch, masks: masks, ablation: .zero, objective: .klToProbabilities(together.flatMap { $0 }))
        XCTAssertEqual(a.loss, b.loss)
        XCTAssertEqual(a.heads, b.heads)
        XCTAssertEqual(a.mlps, b.mlps)
    }

    /// The last layer after attention runs on the [CLS] rows only (every other row has zero gradient):
    /// the loss and every mask gradient equal the all-rows computation, with and without dropout.
    func testCLSOnlyLastLayerGradientsAreExact() throws {
        let (model, batch, acts) = try tinySetup()
        let masks = tinyMasks
        for p: Float in [0, 0.3] {
            let cls = try model.maskGradients(
                batch, masks: masks, ablation: .mean(acts), dropout: p, dropoutSeed: 5, lastLayer: .cls)
            let all = try model.maskGradients(
                batch, masks: masks, ablation: .mean(acts), dropout: p, dropoutSeed: 5, lastLayer: .all)
            XCTAssertEqual(cls.loss, all.loss, accuracy: 1e-12 * max(1, abs(all.loss)), "dropout \(p)")
            for l in 0..<2 {
                for h in 0..<4 {
                    XCTAssertEqual(
                        cls.heads[l][h], all.heads[l][h], accuracy: 1e-7 * max(1e-3, abs(all.heads[l][h])),
                        "head (\(l),\(h)) dropout \(p)")
                }
                XCTAssertEqual(
                    cls.mlps[l], all.mlps[l], accuracy: 1e-7 * max(1e-3, abs(all.mlps[l])), "mlp \(l) dropout \(p)")
            }
        }
    }
}
