// Unit ablation against the general masked forward: each unit's loss and accuracy equal those of the model
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

/// Unit ablation against the general masked forward: each unit's loss and accuracy equal those of the model
/// run with that one unit's mask at 0 through the soft path (another code path than the compiled plans), on
/// the full model and on a subnetwork (whose pruned units are not ablated again).
final class UnitAblationTests: XCTestCase {
    func testEachUnitEqualsTheMaskedForward() throws {
        let folder = repoRoot + "/Tests/Fixtures/models/minilm-nli"
        let model = try BertModel.load(folder: folder)
        let tok = try BertTokenizer.load(folder: folder)
        let g = try SafetensorsFile(path: repoRoot + "/Tests/Fixtures/golden/minilm-nli_pruning.safetensors")
        let acts = MeanActivations(avgHead: try g.floats("avg_head"), avgMLP: try g.floats("avg_mlp"))
        let data = try Dataset.load(repoRoot + "/data/hans/heuristics_evaluation_set.txt.zst", limit: 24)
        let prepared = try prepareDatasets(
            [data.path], keys: .init(), skipBadRows: false, limit: .first(24), model: model, tokenizer: tok,
            options: PredictionOptions(maxLength: 128), warn: { _ in })
        var sub = MaskValues.ones(layers: 6, heads: 12)
        sub.heads[1][3] = 0
        sub.mlps[4] = 0
        let entail = model.config.labels.map { $0.lowercased() }.firstIndex(of: "entailment")!
        for base in [nil, sub] {
            let r = try ablateUnits(
                model: model, datasets: prepared, base: base, baseName: "b", ablation: .mean(acts), batchSize: 8)
            XCTAssertEqual(r.units.count, base == nil ? 78 : 76)
            XCTAssertFalse(r.units.contains { $0.unit == .head(1, 3) } && base != nil)
            for u in [PrunableUnit.head(0, 0), .head(5, 11), .mlp(2)] {
                var m = base ?? MaskValues.ones(layers: 6, heads: 12)
                if let h = u.head { m.heads[u.layer][h] = 0 } else { m.mlps[u.layer] = 0 }
                let logits = try model.forward(TokenBatch(prepared[0].encodings), soft: (m, .mean(acts)))
                var loss = 0.0
                var correct = 0
                for (i, ex) in data.examples.enumerated() {
                    let p = softmaxDouble(Array(logits[(i * 3)..<(i * 3 + 3)]))
                    let gold = ex.label == "entailment"
                    loss -= log(gold ? p[entail] : 1 - p[entail])
                    if (p.indices.max { p[$0] < p[$1] }! == entail) == gold { correct += 1 }
                }
                let got = r.units.first { $0.unit == u }!.outcomes[0]
                XCTAssertEqual(got.loss!, loss / 24, accuracy: 1e-4, "\(u)")
                XCTAssertEqual(got.accuracy, Double(correct) / 24, "\(u)")
            }
        }
    }
}
