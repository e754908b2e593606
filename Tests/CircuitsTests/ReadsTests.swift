// The core's readers (`coreReads`): consistent with the masked forward, and on 500 HANS pairs.
import Checkpoint
import Eval
import Foundation
import Kernels
import Model
import Store
import TestSupport
import Tokenizer
import XCTest

@testable import Circuits

final class ReadsTests: XCTestCase {
    let folder = repoRoot + "/Tests/Fixtures/models/minilm-nli"

    func batches(_ model: BertModel, pairs: Int) throws -> [TokenBatch] {
        let tok = try BertTokenizer.load(folder: folder)
        let text = String(
            decoding: try readDataFile(repoRoot + "/data/hans/heuristics_evaluation_set.txt.zst"), as: UTF8.self)
        let rows = text.split(separator: "\n").dropFirst().prefix(pairs).map {
            $0.split(separator: "\t", omittingEmptySubsequences: false)
        }
        let enc = try rows.map { try tok.encode(String($0[5]), pair: String($0[6]), maxLength: 128) }
        return stride(from: 0, to: enc.count, by: 32).map { TokenBatch(Array(enc[$0..<min(enc.count, $0 + 32)])) }
    }

    /// With the path restriction lifted — every head of layer l given the ablated run's input — head B's
    /// output is exactly what the masked forward of the subnetworks code computes for it; and the core's
    /// ablation through a compiled plan equals the general masked forward.
    func testConsistentWithTheMaskedForward() throws {
        let model = try BertModel.load(folder: folder)
        let g = try SafetensorsFile(path: repoRoot + "/Tests/Fixtures/golden/minilm-nli_pruning.safetensors")
        let acts = MeanActivations(avgHead: try g.floats("avg_head"), avgMLP: try g.floats("avg_mlp"))
        let core = [(layer: 0, head: 3), (layer: 1, head: 7), (layer: 2, head: 2)]
        let masks = coreMasks(core, layers: 6, heads: 12)
        let batch = try batches(model, pairs: 24)[0]
        let ablated = try recordLayers(model: model, batch: batch, soft: (masks, .mean(acts)))
        for (l, h) in [(3, 4), (4, 0), (5, 11), (2, 9)] {
            let ctx = headContext(model: model, layer: l, head: h, input: ablated.inputs[l], batch: batch)
            var worst: Float = 0
            for t in 0..<batch.tokenCount {
                for e in 0..<32 { worst = max(worst, abs(ctx[t * 32 + e] - ablated.contexts[l][t * 384 + h * 32 + e])) }
            }
            XCTAssertLessThan(worst, 1e-5, "head (\(l),\(h))")
        }
        let plan = try ExecutionPlan.compile(model: model, masks: masks, ablation: .mean(acts))
        let viaPlan = try model.forward(batch, plan: plan)
        XCTAssertLessThan(zip(viaPlan, ablated.logits).map { abs($0 - $1) }.max()!, 1e-5)
    }

    /// Its speed is `hcore-bench reads` (BENCHMARKS.md), not a test.
    func testReadsOn500HANSPairs() throws {
        let model = try BertModel.load(folder: folder)
        let g = try SafetensorsFile(path: repoRoot + "/Tests/Fixtures/golden/minilm-nli_pruning.safetensors")
        let acts = MeanActivations(avgHead: try g.floats("avg_head"), avgMLP: try g.floats("avg_mlp"))
        let b = try batches(model, pairs: 500)
        let r = try coreReads(model: model, batches: b, core: [(0, 3), (1, 7), (2, 2)], activations: acts)
        XCTAssertEqual(r.examples, 500)
        // every head of layers 1–5 (after the first core layer) but core heads 1.7 and 2.2
        XCTAssertEqual(r.reads.count, 5 * 12 - 2)
        XCTAssert(r.reads.allSatisfy { $0.layer > 0 && $0.dq >= 0 && $0.dout.isFinite })
        XCTAssertGreaterThan(r.reads.first!.dout, 0)
        XCTAssertGreaterThan(r.klCleanToAblated, 0)
    }
}
