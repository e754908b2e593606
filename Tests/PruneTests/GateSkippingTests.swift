// A pruning step that skips the units its sampled gates close (Model/GatePlan.swift) against the same step
// computing everything, unit by unit, on minilm-nli with the goldens' mean activations: gates drawn so that many
// clamp at 0 — single heads, a layer's every head (also the last layer's), MLPs — and many at 1, with both of
// BERT's dropouts on, so the probability slots of the kept heads are checked too.
import Checkpoint
import Foundation
import Kernels
import Model
import Prune
import TestSupport
import Tokenizer
import XCTest

final class GateSkippingTests: XCTestCase {
    static let model = try! BertModel.load(folder: repoRoot + "/Tests/Fixtures/models/minilm-nli")

    func fixtures() throws -> (TokenBatch, MeanActivations) {
        let golden = repoRoot + "/Tests/Fixtures/golden/"
        let pruning = try SafetensorsFile(path: golden + "minilm-nli_pruning.safetensors")
        let acts = MeanActivations(avgHead: try pruning.floats("avg_head"), avgMLP: try pruning.floats("avg_mlp"))
        let outputs =
            try JSONSerialization.jsonObject(
                with: Data(contentsOf: URL(fileURLWithPath: golden + "minilm-nli_outputs.json"))) as! [String: Any]
        let encodings = (outputs["examples"] as! [[String: Any]]).prefix(8).map { e in
            Encoding(
                inputIds: (e["input_ids"] as! [Int]).map(Int32.init),
                tokenTypeIds: (e["token_type_ids"] as! [Int]).map(Int32.init))
        }
        return (TokenBatch(Array(encodings)), acts)
    }

    /// log α and noise that close many gates: layer 1's and the last layer's heads all, MLPs 2 and 4, and a
    /// spread of others between -4 and 4 (about a third clamped at 0, a third at 1).
    func gates(layers L: Int, heads H: Int, seed: UInt64) -> (logAlpha: [Double], u: [Double]) {
        var rng = SplitMix64(seed: seed)
        var logAlpha = (0..<(L * H + L)).map { _ in -4 + 8 * rng.uniform() }
        for h in 0..<H { (logAlpha[1 * H + h], logAlpha[(L - 1) * H + h]) = (-30, -30) }
        (logAlpha[L * H + 2], logAlpha[L * H + 4]) = (-30, -30)
        logAlpha[L * H + 0] = 30
        return (logAlpha, (0..<(L * H + L)).map { _ in rng.uniform() })
    }

    func testSkippedStepEqualsFullStepUnitByUnit() throws {
        let model = Self.model
        let (batch, acts) = try fixtures()
        let (L, H) = (model.layerCount, model.headCount)
        for seed in [1, 2, 3] as [UInt64] {
            let (logAlpha, u) = gates(layers: L, heads: H, seed: seed)
            let run = { (skip: Bool) in
                try pruneObjective(
                    model: model, batch: batch, logAlpha: logAlpha, u: u, lambdas: [0.3, 0.2], target: 0.4,
                    activations: acts, dropout: 0.1, attentionDropout: 0.1, dropoutSeed: seed,
                    skipClosedGates: skip)
            }
            let (skipped, full) = (try run(true), try run(false))
            let z = (0..<logAlpha.count).map { HardConcrete.sample(logAlpha: Float(logAlpha[$0]), u: Float(u[$0])) }
            let closed = z.filter { $0 == 0 }.count
            XCTAssertGreaterThan(closed, L * H / 3, "the test must close many gates")
            XCTAssertGreaterThan(z.filter { $0 > 0 && $0 < 1 }.count, 5, "and leave some open")
            XCTAssertEqual(skipped.kl, full.kl, accuracy: 1e-6 * max(1, abs(full.kl)))
            XCTAssertEqual(skipped.sampledSparsity, full.sampledSparsity)
            let scale = full.gradLogAlpha.map(abs).max()!
            XCTAssertGreaterThan(scale, 0)
            for i in 0..<logAlpha.count {
                // Mean ablation folds a closed head's W_O·avg into the bias: float rounding, nothing more.
                XCTAssertEqual(
                    skipped.gradLogAlpha[i], full.gradLogAlpha[i], accuracy: 1e-5 * scale,
                    "unit \(PrunableUnit(index: i, layers: L, heads: H)) (z \(z[i])), seed \(seed)")
                if z[i] == 0 || z[i] == 1 { XCTAssertEqual(skipped.gradLogAlpha[i], 0) }
            }
        }
    }

    /// Under zero ablation nothing is folded: the forward (the loss) is the full pass's bit for bit, and the
    /// gradients differ only where dx = dqkv·W_qkv sums the kept heads' columns in other K slices (~1e-7 relative).
    func testZeroAblationSkipMatchesToTheLastBits() throws {
        let model = Self.model
        let (batch, _) = try fixtures()
        let (L, H) = (model.layerCount, model.headCount)
        let (logAlpha, u) = gates(layers: L, heads: H, seed: 9)
        let z = (0..<logAlpha.count).map { HardConcrete.sample(logAlpha: Float(logAlpha[$0]), u: Float(u[$0])) }
        let masks = MaskValues(units: z, layers: L, heads: H)
        let needed = z.map { $0 > 0 && $0 < 1 }
        let run = { (needed: [Bool]?) in
            try model.maskGradients(
                batch, masks: masks, ablation: .zero, dropout: 0.1, attentionDropout: 0.1, dropoutSeed: 5,
                needed: needed)
        }
        let (skipped, full) = (try run(needed), try run(nil))
        XCTAssertEqual(skipped.loss, full.loss)
        let units = (Array(skipped.heads.joined()) + skipped.mlps, Array(full.heads.joined()) + full.mlps)
        let scale = units.1.map(abs).max()!
        for i in 0..<z.count where needed[i] {
            XCTAssertEqual(
                units.0[i], units.1[i], accuracy: 1e-5 * scale, "unit \(PrunableUnit(index: i, layers: L, heads: H))")
        }
        for i in 0..<z.count where !needed[i] { XCTAssertEqual(units.0[i], 0) }
    }

    func testNeededOfTheWrongLengthIsRefused() throws {
        let (batch, acts) = try fixtures()
        let masks = MaskValues.ones(layers: Self.model.layerCount, heads: Self.model.headCount)
        XCTAssertThrowsError(
            try Self.model.maskGradients(batch, masks: masks, ablation: .mean(acts), needed: [true, false]))
    }
}
