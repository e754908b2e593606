// Many-subnetwork evaluation: prefix sharing is exact and skips the shared layers.
import Eval
import Foundation
import Model
import TestSupport
import Tokenizer
import XCTest

final class PrefixSharingTests: XCTestCase {
    func testSharingIsExactAndSavesLayers() throws {
        let folder = repoRoot + "/Tests/Fixtures/models/minilm-nli"
        let model = try BertModel.load(folder: folder)
        let tok = try BertTokenizer.load(folder: folder)
        let ds = try Dataset.load(repoRoot + "/data/hans/heuristics_evaluation_set.txt.zst", limit: 96)
        let prepared = try PreparedDataset(dataset: ds, model: model, tokenizer: tok, options: PredictionOptions())
        // Eight subnetworks: pairs agree on layers 0–3, and two of them also on 4; plus the full model.
        var targets = [EvalTarget(name: "full", index: 0, sparsity: 0, seed: .null, masks: nil)]
        for i in 0..<8 {
            var m = MaskValues.ones(layers: 6, heads: 12)
            for l in 0..<4 { m.heads[l][(i / 2 + l) % 12] = 0 }  // shared by pairs
            m.heads[4][i % 12] = 0
            m.heads[5][(i * 5) % 12] = 0
            if i % 3 == 0 { m.mlps[5] = 0 }
            if i == 7 { m.heads[4] = m.heads[4].map { _ in 0.5 } }  // a fractional one: general path
            targets.append(EvalTarget(name: "s\(i)", index: i + 1, sparsity: 0, seed: .null, masks: m))
        }
        let acts = MeanActivations(
            avgHead: [Float](repeating: 0.05, count: 6 * 12 * 32), avgMLP: [Float](repeating: 0.01, count: 6 * 384))
        var shared = EvalStats()
        var unshared = EvalStats()
        let a = try evaluateTargets(
            model: model, datasets: [prepared], targets: targets, ablation: .mean(acts), batchSize: 16,
            keepLogits: true, prefixSharing: true, stats: &shared)
        let b = try evaluateTargets(
            model: model, datasets: [prepared], targets: targets, ablation: .mean(acts), batchSize: 16,
            keepLogits: true, prefixSharing: false, stats: &unshared)
        for (x, y) in zip(a, b) {
            XCTAssertEqual(x.target.name, y.target.name)
            XCTAssertEqual(x.logits, y.logits, x.target.name)  // bit-identical
        }
        XCTAssertLessThan(shared.layerRuns, unshared.layerRuns)
        print("prefix sharing: \(shared.layerRuns) layer runs instead of \(unshared.layerRuns)")
        // Each subnetwork's logits equal a plain forward pass of it.
        let enc = prepared.encodings
        for r in a where r.target.masks != nil {
            let m = r.target.masks!
            let plan = m.isBinary ? try ExecutionPlan.compile(model: model, masks: m, ablation: .mean(acts)) : nil
            let direct = try model.forward(
                TokenBatch(Array(enc[0..<5])), plan: plan, soft: m.isBinary ? nil : (m, .mean(acts)))
            for e in 0..<5 { for c in 0..<3 { XCTAssertEqual(r.logits[0][e][c], direct[e * 3 + c], accuracy: 2e-5) } }
            // FLOPs from masks equal the compiled plan's count.
            if let plan {
                XCTAssertEqual(
                    model.flops(masks: m, sequenceLengths: [7, 30]), plan.flops(model: model, sequenceLengths: [7, 30]))
                XCTAssertEqual(
                    model.flops(masks: m, sequenceLengths: [7, 30], clsOnlyLastLayer: true),
                    plan.flops(model: model, sequenceLengths: [7, 30], clsOnlyLastLayer: true))
            }
        }
    }

    /// The FLOPs of the [CLS]-only last layer, counted by hand for minilm-nli (D 384, 12 heads of 32, I 1536)
    /// on two sequences of 7 and 30 tokens: the other layers unchanged; the last one has 12 heads' scores and
    /// weighted sums over the 384 features of all 37 tokens (no keys or values), and per sequence (2 rows) Q,
    /// u = W_Kᵀq, W_V·r and W_O (each 384 × 384) and the MLP.
    func testCLSOnlyFLOPCount() throws {
        let model = try BertModel.load(folder: repoRoot + "/Tests/Fixtures/models/minilm-nli")
        let full = model.flops(masks: MaskValues?.none, sequenceLengths: [7, 30])
        let perLayer = 2.0 * Double((4 * 384 * 384 + 2 * 384 * 1536) * 37 + 2 * (49 + 900) * 384)
        XCTAssertEqual(full, 6 * perLayer)
        let lastCLS = 2.0 * Double(2 * 12 * 384 * 37 + (4 * 384 * 384 + 2 * 384 * 1536) * 2)
        XCTAssertEqual(
            model.flops(masks: MaskValues?.none, sequenceLengths: [7, 30], clsOnlyLastLayer: true),
            5 * perLayer + lastCLS)
    }
}
