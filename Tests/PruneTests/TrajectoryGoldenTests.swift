// The reference's whole pruning loop, step by step (Tests/Fixtures/golden/minilm-nli_prune_trajectory, GOLDEN-README
// §6): prune-glue.py under HF's Trainer replayed with its hard-concrete noise on minilm-nli — 96 pairs in 6
// batches of 16 in file order, dropout 0, mean ablation. Two cases: `clip` (gradient clipping binding at every
// step, accumulation 2, learning-rate warm-up 2 of 6 steps) and `noclip`. After every optimizer step log α and
// λ must lie within 2e-5 of the float64 reference (a float32 run of the reference itself lands within 1.2e-6),
// the gradient norm before clipping and every micro-batch's KL within 1e-5 relative.
import Checkpoint
import Foundation
import Kernels
import Model
import Prune
import TestSupport
import Tokenizer
import XCTest

final class TrajectoryGoldenTests: XCTestCase {
    func replay(_ name: String) throws {
        let golden = repoRoot + "/Tests/Fixtures/golden/"
        let model = try BertModel.load(folder: repoRoot + "/Tests/Fixtures/models/minilm-nli")
        let pruning = try SafetensorsFile(path: golden + "minilm-nli_pruning.safetensors")
        let acts = MeanActivations(avgHead: try pruning.floats("avg_head"), avgMLP: try pruning.floats("avg_mlp"))
        let outputs =
            try JSONSerialization.jsonObject(
                with: Data(contentsOf: URL(fileURLWithPath: golden + "minilm-nli_outputs.json"))) as! [String: Any]
        let encodings = (outputs["examples"] as! [[String: Any]]).map { e in
            Encoding(
                inputIds: (e["input_ids"] as! [Int]).map(Int32.init),
                tokenTypeIds: (e["token_type_ids"] as! [Int]).map(Int32.init))
        }
        XCTAssertEqual(encodings.count, 96)
        let trajectory = try SafetensorsFile(path: golden + "minilm-nli_prune_trajectory.safetensors")
        let doc =
            try JSONSerialization.jsonObject(
                with: Data(contentsOf: URL(fileURLWithPath: golden + "minilm-nli_prune_trajectory.json")))
            as! [String: Any]
        let spec = (doc["cases"] as! [[String: Any]]).first { $0["name"] as? String == name }!
        let U = 78
        let u = try trajectory.floats("\(name).u").map(Double.init)
        let noise = (0..<(u.count / U)).map { Array(u[($0 * U)..<(($0 + 1) * U)]) }
        var c = PruneConfig()
        c.maxGradNorm = spec["max_grad_norm"] as! Double
        c.learningRate = spec["lr"] as! Double
        c.regLearningRate = spec["reg_lr"] as! Double
        c.warmupSteps = spec["warmup_steps"] as! Int
        c.maxSteps = spec["total_steps"] as! Int
        c.gradientAccumulationSteps = spec["accum"] as! Int
        c.startSparsity = spec["start_sparsity"] as! Double
        c.targetSparsity = spec["target_sparsity"] as! Double
        c.sparsityWarmupSteps = spec["num_sparsity_warmup_steps"] as! Int
        c.batchSize = 16
        c.dropout = 0
        c.shuffle = false
        var states: [PruneState] = []
        var records: [PruneStep] = []
        let result = try prune(
            model: model, encodings: encodings, activations: acts, config: c,
            initialLogAlpha: try trajectory.floats("\(name).initial_log_alpha"), noise: noise,
            checkpointEvery: 1, checkpoint: { states.append($0) }, onStep: { records.append($0) })
        let steps = spec["steps"] as! [[String: Any]]
        XCTAssertEqual(records.count, steps.count)
        for (k, want) in steps.enumerated() {
            let got = records[k]
            let logAlpha = k < states.count ? states[k].logAlpha : result.logAlpha.map(Double.init)
            let wantLogAlpha = want["log_alpha"] as! [Double]
            let worst = zip(logAlpha, wantLogAlpha).map { abs($0 - $1) }.max()!
            XCTAssertLessThan(worst, 2e-5, "\(name) step \(k): log α")
            XCTAssertEqual(got.lambda1, want["lambda1"] as! Double, accuracy: 2e-5, "\(name) step \(k): λ1")
            XCTAssertEqual(got.lambda2, want["lambda2"] as! Double, accuracy: 2e-5, "\(name) step \(k): λ2")
            XCTAssertEqual(got.target, want["target_sparsity"] as! Double, accuracy: 1e-12, "\(name) step \(k): target")
            XCTAssertEqual(
                got.learningRate!, want["lr"] as! Double, accuracy: 1e-12, "\(name) step \(k): learning rate")
            let norm = want["grad_norm_before_clip"] as! Double
            XCTAssertEqual(got.gradNorm!, norm, accuracy: 1e-5 * norm, "\(name) step \(k): gradient norm")
            for (j, mb) in (want["micro_batches"] as! [[String: Any]]).enumerated() {
                let kl = mb["kl"] as! Double
                XCTAssertEqual(
                    got.microKL![j], kl, accuracy: 1e-5 * kl + 1e-9, "\(name) step \(k) micro-batch \(j): KL")
                XCTAssertEqual(
                    got.microSparsity![j], mb["sparsity"] as! Double, accuracy: 1e-6,
                    "\(name) step \(k) micro-batch \(j): sparsity")
            }
        }
    }

    func testClippedCase() throws { try replay("clip") }
    func testUnclippedCase() throws { try replay("noclip") }
}
