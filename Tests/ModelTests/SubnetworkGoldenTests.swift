// Masked forward (general path and compiled plans) against Tests/Fixtures/golden/minilm-nli_pruning
// (GOLDEN-README.md §4): logits max|Δ| ≤ 1e-4 with the stored averages; mean activations over the first
// 2000 HANS rows |Δ| ≤ 1e-4·max(1, |ref|).
import Checkpoint
import Foundation
import Kernels
import Model
import TestSupport
import Tokenizer
import XCTest

final class SubnetworkGoldenTests: XCTestCase {
    func testMaskedLogitsGeneralPath() throws {
        let model = try cachedModel(try minilmFolder())
        let golden = try GoldenOutputs("minilm-nli")
        let pruning = try PruningGolden()
        XCTAssertEqual(pruning.sets.count, 6)
        let avg = try pruning.activations()
        for (set, mean) in pruning.sets {
            let masks = try pruning.masks(set)
            let ablation: Ablation = mean ? .mean(avg) : .zero
            var logits: [Float] = []
            for b in golden.batches {
                logits += try model.forward(TokenBatch(b.map(golden.encoding)), soft: (masks, ablation))
            }
            let want = try pruning.tensors.floats("\(set).logits")
            XCTAssertLessThanOrEqual(maxAbs(logits, want), 1e-4, set)
            print("masked golden \(set) (general path): max|Δ| = \(maxAbs(logits, want))")
        }
    }

    func testCompiledPlansEqualGoldenAndGeneralPath() throws {
        let model = try cachedModel(try minilmFolder())
        let golden = try GoldenOutputs("minilm-nli")
        let pruning = try PruningGolden()
        let avg = try pruning.activations()
        var compiled = 0
        for (set, mean) in pruning.sets {
            let masks = try pruning.masks(set)
            guard masks.isBinary else { continue }
            let ablation: Ablation = mean ? .mean(avg) : .zero
            let plan = try ExecutionPlan.compile(model: model, masks: masks, ablation: ablation)
            var viaPlan: [Float] = []
            var viaGeneral: [Float] = []
            for b in golden.batches {
                let batch = TokenBatch(b.map(golden.encoding))
                viaPlan += try model.forward(batch, plan: plan)
                viaGeneral += try model.forward(batch, soft: (masks, ablation))
            }
            let want = try pruning.tensors.floats("\(set).logits")
            XCTAssertLessThanOrEqual(maxAbs(viaPlan, want), 1e-4, set)
            XCTAssertLessThanOrEqual(maxAbs(viaPlan, viaGeneral), 1e-5, set)
            compiled += 1
        }
        XCTAssertEqual(compiled, 5)  // all but the fractional set
    }

    /// Inference with nothing observing runs a pruned MLP's LayerNorm₂ and the layers after it that keep neither
    /// head nor MLP in one sweep with LayerNorm₁, in W_O's epilogue or after the MLP (Kernels/LayerNormChain): the
    /// hidden states and logits are those of the same plan run step by step (an observer that watches nothing
    /// turns the chains off), bit for bit — hosts with heads and a pruned MLP, with an MLP, and with neither.
    func testChainedLayerNormsEqualStepByStep() throws {
        final class Watching: ForwardObserver {}
        let model = try cachedModel(try minilmFolder())
        let golden = try GoldenOutputs("minilm-nli")
        let avg = try PruningGolden().activations()
        var plans: [(String, MaskValues)] = []
        var m = MaskValues.ones(layers: 6, heads: 12)
        m.heads[0] = (0..<12).map { $0 % 3 == 0 ? 1 : 0 }
        (m.mlps[0], m.mlps[1], m.mlps[3], m.mlps[4]) = (0, 0, 0, 0)
        for l in [1, 3, 4] { m.heads[l] = [Float](repeating: 0, count: 12) }
        plans.append(("heads + pruned MLP, then empty; MLP, then two empty", m))
        var e = MaskValues.ones(layers: 6, heads: 12)
        for l in 0..<4 { (e.heads[l], e.mlps[l]) = ([Float](repeating: 0, count: 12), 0) }
        plans.append(("four empty layers first", e))
        for (name, masks) in plans {
            let plan = try ExecutionPlan.compile(model: model, masks: masks, ablation: .mean(avg))
            for b in golden.batches.prefix(2) {
                let batch = TokenBatch(b.map(golden.encoding))
                let chained = try model.encode(batch, plan: plan)
                let stepwise = try model.encode(batch, plan: plan, observer: Watching())
                defer { (chained.deallocate(), stepwise.deallocate()) }
                let n = batch.tokenCount * model.hidden
                XCTAssertEqual(
                    Array(UnsafeBufferPointer(start: chained, count: n)),
                    Array(UnsafeBufferPointer(start: stepwise, count: n)), name)
                XCTAssertEqual(
                    try model.forward(batch, plan: plan, lastLayer: .all),
                    try model.forward(batch, plan: plan, observer: Watching()), name)
            }
        }
    }

    /// The last layer computed for the [CLS] rows only — keys and values never formed (firstQueryAttention) —
    /// gives the logits of computing every row to rounding: full model, compiled plans (including one whose last
    /// layer keeps no head) and soft masks. Worst difference measured: 5.4e-7 (bound 2e-6).
    func testCLSOnlyLastLayerMatchesEveryRow() throws {
        let model = try cachedModel(try minilmFolder())
        let golden = try GoldenOutputs("minilm-nli")
        let pruning = try PruningGolden()
        let avg = try pruning.activations()
        var lastLayerEmpty = MaskValues.ones(layers: 6, heads: 12)
        lastLayerEmpty.heads[5] = [Float](repeating: 0, count: 12)
        lastLayerEmpty.mlps[2] = 0
        var cases: [(String, ExecutionPlan?, (masks: MaskValues, ablation: Ablation)?)] = [("full", nil, nil)]
        cases.append(
            (
                "no heads in the last layer",
                try ExecutionPlan.compile(model: model, masks: lastLayerEmpty, ablation: .mean(avg)), nil
            ))
        for (set, mean) in pruning.sets {
            let masks = try pruning.masks(set)
            let ablation: Ablation = mean ? .mean(avg) : .zero
            if masks.isBinary {
                cases.append(
                    ("\(set) plan", try ExecutionPlan.compile(model: model, masks: masks, ablation: ablation), nil))
            }
            cases.append(("\(set) soft", nil, (masks, ablation)))
        }
        for (name, plan, soft) in cases {
            for b in golden.batches {
                let batch = TokenBatch(b.map(golden.encoding))
                let firstQuery = try model.forward(batch, plan: plan, soft: soft, lastLayer: .firstQuery)
                let cls = try model.forward(batch, plan: plan, soft: soft, lastLayer: .cls)
                let all = try model.forward(batch, plan: plan, soft: soft, lastLayer: .all)
                XCTAssertLessThanOrEqual(maxAbs(firstQuery, all), 2e-6, name)
                // Gathering the [CLS] rows after attention leaves each row's arithmetic as it was.
                XCTAssertEqual(cls, all, name)
            }
        }
    }

    func testDistinctEmbeddingRows() {
        // Two sequences: [7, 8, 9] and [7, 8, 5, 9] with types [0, 0, 1] and [0, 0, 1, 1]. Rows 3 and 4 repeat
        // rows 0 and 1 (same id, position, type); row 6 has id 9 like row 2 but another position.
        var batch = TokenBatch()
        batch.append(Encoding(inputIds: [7, 8, 9], tokenTypeIds: [0, 0, 1]))
        batch.append(Encoding(inputIds: [7, 8, 5, 9], tokenTypeIds: [0, 0, 1, 1]))
        let (unique, source) = batch.distinctEmbeddingRows()
        XCTAssertEqual(unique, [0, 1, 2, 5, 6])
        XCTAssertEqual(source, [0, 1, 2, 0, 1, 3, 4])
        // Same id and position, another token type: distinct.
        var typed = TokenBatch()
        typed.append(Encoding(inputIds: [7, 8], tokenTypeIds: [0, 0]))
        typed.append(Encoding(inputIds: [7, 8], tokenTypeIds: [0, 1]))
        XCTAssertEqual(typed.distinctEmbeddingRows().unique, [0, 1, 3])
    }

    /// Layer 0 computing Q/K/V once per distinct embedding row changes no bit of the logits: full model,
    /// a compiled plan and soft masks, on golden pairs with repeated sequences and shared template words.
    func testRepeatedEmbeddingRowsAreExact() throws {
        let model = try cachedModel(try minilmFolder())
        let golden = try GoldenOutputs("minilm-nli")
        let pruning = try PruningGolden()
        let avg = try pruning.activations()
        let masks = try pruning.masks(pruning.sets[0].name)
        var binary = MaskValues.ones(layers: 6, heads: 12)
        binary.heads[0] = (0..<12).map { $0 % 3 == 0 ? 0 : 1 }
        binary.mlps[3] = 0
        let cases: [(String, ExecutionPlan?, (masks: MaskValues, ablation: Ablation)?)] = [
            ("full", nil, nil),
            ("plan", try ExecutionPlan.compile(model: model, masks: binary, ablation: .mean(avg)), nil),
            ("soft", nil, (masks, .mean(avg))),
        ]
        let examples = Array(0..<min(12, golden.examples.count))
        let batch = TokenBatch((examples + examples.prefix(5) + examples.reversed()).map(golden.encoding))
        let (unique, _) = batch.distinctEmbeddingRows()
        XCTAssertLessThan(unique.count * 10, batch.tokenCount * 9, "the batch must take the repeated-row path")
        for (name, plan, soft) in cases {
            for rows in [LayerRows.firstQuery, .cls, .all] {
                let fast = try model.forward(batch, plan: plan, soft: soft, lastLayer: rows)
                let x = allocateFloats(batch.tokenCount * model.hidden)
                defer { x.deallocate() }
                try model.embeddings(batch, into: x)
                try model.runLayers(
                    x, batch: batch, range: 0..<model.layerCount, plan: plan, soft: soft, lastLayer: rows,
                    xHoldsEmbeddings: false)
                XCTAssertEqual(fast, try model.logits(fromHidden: x, batch: batch), "\(name), last layer \(rows)")
            }
        }
    }

    func testPlanSkipsPrunedWork() throws {
        let model = try cachedModel(try minilmFolder())
        let pruning = try PruningGolden()
        let masks = try pruning.masks("b_heads_pruned")  // layer 2 has no heads left
        let plan = try ExecutionPlan.compile(model: model, masks: masks, ablation: .mean(try pruning.activations()))
        XCTAssertEqual(plan.layers[0].keptHeads, [0, 2, 3, 4, 6, 7, 8, 9, 10, 11])
        XCTAssertEqual(plan.layers[0].qkv?.n, 3 * 10 * 32)
        XCTAssertEqual(plan.layers[0].attentionOutput?.k, 10 * 32)
        XCTAssertNil(plan.layers[2].qkv)
        XCTAssertNotNil(plan.layers[2].attentionConstant)
        let full = model.fullPlan.denseMACsPerToken(model: model)
        XCTAssertEqual(plan.denseMACsPerToken(model: model), full - 15 * 4 * 32 * 384)
    }

    func testMeanActivationsOverFirst2000HANSRows() throws {
        let model = try cachedModel(try minilmFolder())
        let tok = try BertTokenizer.load(folder: try minilmFolder())
        let pruning = try PruningGolden()
        // The HANS file ships zstd-compressed; read it through Checkpoint's reader.
        let text = String(
            decoding: try readDataFile(fixtures + "/../../data/hans/heuristics_evaluation_set.txt.zst"), as: UTF8.self)
        let rows = text.split(separator: "\n").dropFirst().prefix(2000).map {
            $0.split(separator: "\t", omittingEmptySubsequences: false)
        }
        let encodings = try rows.map { try tok.encode(String($0[5]), pair: String($0[6]), maxLength: 128) }
        XCTAssertEqual(encodings.reduce(0) { $0 + $1.count }, 35_203)
        let acc = ActivationAccumulator(model: model)
        for start in stride(from: 0, to: encodings.count, by: 64) {
            let batch = TokenBatch(Array(encodings[start..<min(encodings.count, start + 64)]))
            let x = try model.encode(batch, observer: acc)
            x.deallocate()
        }
        let got = acc.result(fingerprint: model.fingerprint)
        let wantHead = try pruning.tensors.floats("avg_head")
        let wantMLP = try pruning.tensors.floats("avg_mlp")
        func worst(_ a: [Float], _ b: [Float]) -> Float { zip(a, b).map { abs($0 - $1) / max(1, abs($1)) }.max()! }
        XCTAssertLessThanOrEqual(worst(got.avgHead, wantHead), 1e-4)
        XCTAssertLessThanOrEqual(worst(got.avgMLP, wantMLP), 1e-4)
        print("mean activations: max rel Δ head \(worst(got.avgHead, wantHead)), mlp \(worst(got.avgMLP, wantMLP))")
    }

    func testBadMasksAndForeignActivationsRefused() throws {
        let model = try cachedModel(fixtures + "/models/tiny-bert")
        let batch = TokenBatch([Encoding(inputIds: [101, 2000, 102], tokenTypeIds: [0, 0, 0])])
        let wrongShape = MaskValues(heads: [[1, 1, 1]], mlps: [1, 1])
        XCTAssertThrowsError(try model.forward(batch, soft: (wrongShape, .zero))) {
            XCTAssert("\($0)".contains("mask shape"))
        }
        var outOfRange = MaskValues.ones(layers: 2, heads: 4)
        outOfRange.heads[1][2] = 1.5
        XCTAssertThrowsError(try model.forward(batch, soft: (outOfRange, .zero))) {
            XCTAssert("\($0)".contains("outside [0, 1]"))
        }
        outOfRange.heads[1][2] = .nan
        XCTAssertThrowsError(try model.forward(batch, soft: (outOfRange, .zero)))
        let foreign = MeanActivations(
            avgHead: [Float](repeating: 0, count: 2 * 4 * 8), avgMLP: [Float](repeating: 0, count: 2 * 32),
            fingerprint: "hc1-0000000000000000")
        XCTAssertThrowsError(try model.forward(batch, soft: (.ones(layers: 2, heads: 4), .mean(foreign)))) {
            XCTAssert("\($0)".contains("computed for model"))
        }
        var fractional = MaskValues.ones(layers: 2, heads: 4)
        fractional.mlps[0] = 0.5
        XCTAssertThrowsError(try ExecutionPlan.compile(model: model, masks: fractional, ablation: .zero))
    }
}
