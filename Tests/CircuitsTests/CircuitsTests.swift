// Composition scores against an independent reference: the hidden × hidden matrices built with plain
// loops from the safetensors weights (not hcore's packed copies), Frobenius norms in Double.
import Checkpoint
import Eval
import Foundation
import Kernels
import Model
import TestSupport
import Tokenizer
import XCTest

@testable import Circuits

let repoRoot = repositoryRoot.path

final class CompositionTests: XCTestCase {
    func testAgainstNaiveHiddenByHiddenProducts() throws {
        let folder = repoRoot + "/Tests/Fixtures/models/minilm-nli"
        let model = try BertModel.load(folder: folder)
        let st = try SafetensorsFile(path: folder + "/model.safetensors")
        let D = 384
        let d = 32
        let scores = composition(factors: headFactors(model: model), hidden: D, headDim: d)
        XCTAssertEqual(scores.count, (0..<6).reduce(0) { $0 + 12 * 12 * (5 - $1) })
        func w(_ l: Int, _ name: String) throws -> [Double] {
            try st.floats("bert.encoder.layer.\(l).attention.\(name).weight").map(Double.init)
        }
        /// [D, D] matrices of one head: W_QK = W_Q W_Kᵀ and W_OV = W_V W_O, from the HF [out, in] weights.
        func matrices(_ l: Int, _ h: Int) throws -> (qk: [Double], ov: [Double]) {
            let wq = try w(l, "self.query")
            let wk = try w(l, "self.key")
            let wv = try w(l, "self.value")
            let wo = try w(l, "output.dense")
            var qk = [Double](repeating: 0, count: D * D)
            var ov = [Double](repeating: 0, count: D * D)
            for r in 0..<D {
                for c in 0..<D {
                    var s1 = 0.0
                    var s2 = 0.0
                    for e in 0..<d {
                        s1 += wq[(h * d + e) * D + r] * wk[(h * d + e) * D + c]  // W_Q[r][e] · W_K[c][e]
                        s2 += wv[(h * d + e) * D + r] * wo[c * D + h * d + e]  // W_V[r][e] · W_O[e][c]
                    }
                    qk[r * D + c] = s1
                    ov[r * D + c] = s2
                }
            }
            return (qk, ov)
        }
        func frob(_ m: [Double]) -> Double { m.reduce(0) { $0 + $1 * $1 }.squareRoot() }
        func matmul(_ a: [Double], _ b: [Double], transposeB: Bool = false) -> [Double] {
            var out = [Double](repeating: 0, count: D * D)
            for i in 0..<D {
                for k in 0..<D {
                    let aik = a[i * D + k]
                    for j in 0..<D { out[i * D + j] += aik * (transposeB ? b[j * D + k] : b[k * D + j]) }
                }
            }
            return out
        }
        for (a, b) in [((0, 0), (1, 3)), ((2, 5), (5, 11)), ((0, 11), (5, 0))] {
            let A = try matrices(a.0, a.1)
            let B = try matrices(b.0, b.1)
            let q = frob(matmul(A.ov, B.qk)) / (frob(A.ov) * frob(B.qk))
            let k = frob(matmul(A.ov, B.qk, transposeB: true)) / (frob(A.ov) * frob(B.qk))
            let v = frob(matmul(A.ov, B.ov)) / (frob(A.ov) * frob(B.ov))
            let s = scores.first { $0.from == a && $0.to == b }!
            XCTAssertEqual(s.q, q, accuracy: 1e-5, "Q \(a)→\(b)")
            XCTAssertEqual(s.k, k, accuracy: 1e-5, "K \(a)→\(b)")
            XCTAssertEqual(s.v, v, accuracy: 1e-5, "V \(a)→\(b)")
        }
        let base = compositionBaseline(hidden: D, headDim: d, samples: 4)
        XCTAssert(base.q > 0 && base.q < 0.5 && base.v > 0 && base.v < 0.5, "\(base)")
    }
}

final class CoreTests: XCTestCase {
    func testFrequenciesEqualADirectCount() {
        let layout = StoreLayout(layers: 6, heads: 12)
        var rng = SystemRandomNumberGenerator()
        let subs = (0..<25).map { i -> StoredSubnetwork in
            var mask = (0..<78).map { _ in UInt8.random(in: 0...1, using: &rng) }
            for u in [3, 17, 40, 75] { mask[u] = 1 }  // kept by everyone: the core
            return StoredSubnetwork(
                name: "s\(i)", mask: mask, meta: .object([("hans", .float(Double(mask[5]) + 0.1 * Double(i % 3)))]))
        }
        let report = findCore(subs, layout: layout, fraction: 1.0, metric: "hans")
        for u in 0..<78 {
            let direct = subs.filter { $0.mask[u] == 1 }.count
            XCTAssertEqual(report.keepFrequency[u], Double(direct) / 25, accuracy: 1e-12)
        }
        XCTAssertTrue(Set([3, 17, 40, 75]).isSubset(of: Set(report.core)))
        XCTAssertEqual(Set(report.core), Set((0..<78).filter { u in subs.allSatisfy { $0.mask[u] == 1 } }))
        XCTAssertEqual(report.name(17).description, "a1.h5")
        XCTAssertEqual(report.name(75).description, "a3.mlp")
        XCTAssertNil(report.correlation[3])  // constant presence
        XCTAssertGreaterThan(report.correlation[5] ?? 0, 0.9)  // the metric follows unit 5
    }
}

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
            [data.path], keys: .init(), skipBadRows: false, limit: 24, model: model, tokenizer: tok,
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

/// The core with its evidence, on masks whose null distribution is known in closed form.
final class CoreEvidenceTests: XCTestCase {
    /// One layer of 4 heads (+ its MLP), three subnetworks each keeping heads 0 and 1 and the MLP. Under the
    /// null each mask keeps a uniformly random pair of heads (the MLP stratum has one unit: always kept), so the
    /// core is 1 + |A ∩ B ∩ C|: P(size ≥ 3) = P(A = B = C) = (1/6)² = 1/36, E[size] = 1 + 4·(1/2)³ = 1.5.
    func testPermutationNullAgainstClosedForm() throws {
        let layout = StoreLayout(layers: 1, heads: 4)
        let subs = (0..<3).map {
            StoredSubnetwork(name: "s\($0)", mask: [1, 1, 0, 0, 1], meta: .object([("eval/dev", .float(0.9))]))
        }
        let e = try heuristicCore(subs, layout: layout, rule: nil, permutations: 20_000, bootstraps: 200, seed: 3)
        XCTAssertEqual(e.report.core, [0, 1, 4])
        XCTAssertEqual(e.null.observed, 3)
        XCTAssertEqual(e.null.nullMean, 1.5, accuracy: 0.02)
        XCTAssertEqual(e.null.pValue, 1.0 / 36, accuracy: 0.004)
        XCTAssertEqual(e.stability, [1, 1, 0, 0, 1])  // every resample keeps the same masks
        // Reproducible from its seed.
        XCTAssertEqual(
            try heuristicCore(subs, layout: layout, rule: nil, permutations: 500, seed: 9).null.pValue,
            try heuristicCore(subs, layout: layout, rule: nil, permutations: 500, seed: 9).null.pValue)
    }

    /// Matching by the stored in-domain metric within the margin of the reference; too few: refused.
    func testMatchingRuleAndMinimumCount() throws {
        let layout = StoreLayout(layers: 1, heads: 4)
        let scores = [0.90, 0.89, 0.80, 0.885]
        let subs = scores.enumerated().map {
            StoredSubnetwork(
                name: "s\($0.offset)", mask: [1, 0, 1, 0, 1],
                meta: .object([("eval/dev", .float($0.element)), ("eval/hans", .float(0.5))]))
        }
        XCTAssertEqual(defaultInDomainMetric(subs), "eval/dev")
        let e = try heuristicCore(
            subs, layout: layout, rule: MatchRule(metric: "eval/dev", reference: 0.9, margin: 0.02, minimumCount: 3),
            permutations: 10)
        XCTAssertEqual(e.report.subnetworks, ["s0", "s1", "s3"])
        XCTAssertEqual(e.excluded, ["s2"])
        XCTAssertThrowsError(
            try heuristicCore(
                subs, layout: layout, rule: MatchRule(metric: "eval/dev", reference: 0.9, margin: 0.02, minimumCount: 4)
            ))
        XCTAssertThrowsError(try heuristicCore(subs, layout: layout, rule: MatchRule(metric: "eval/mnli")))
    }
}

/// Attention patterns against transformers' output_attentions (Tests/Fixtures/attention, made by
/// scripts/make-attention-fixture.py): every layer, head, query and key of one pair.
final class AttentionPatternTests: XCTestCase {
    func testEqualsTransformersOutputAttentions() throws {
        let folder = repoRoot + "/Tests/Fixtures/models/minilm-nli"
        let model = try BertModel.load(folder: folder)
        let tok = try BertTokenizer.load(folder: folder)
        let fixture =
            try JSONSerialization.jsonObject(
                with: Data(contentsOf: URL(fileURLWithPath: repoRoot + "/Tests/Fixtures/attention/minilm-nli.json")))
            as! [String: Any]
        let e = try tok.encode(fixture["text"] as! String, pair: fixture["text_pair"] as? String, maxLength: 128)
        XCTAssertEqual(e.inputIds.map(Int.init), fixture["input_ids"] as! [Int])
        let batch = TokenBatch([e])
        let p = AttentionPatterns(
            tokens: e.inputIds.map(tok.token), sequence: 0, of: batch, patterns: try model.attentionPatterns(batch),
            heads: model.headCount)
        let want = fixture["attentions"] as! [[[[Double]]]]
        var worst = 0.0
        for l in 0..<6 {
            for h in 0..<12 {
                for i in 0..<p.length {
                    for j in 0..<p.length {
                        worst = max(
                            worst, abs(Double(p.weight(layer: l, head: h, query: i, key: j)) - want[l][h][i][j]))
                    }
                }
            }
        }
        XCTAssertLessThan(worst, 1e-5)
        XCTAssertTrue(p.svg(layer: 2, head: 5).contains("a2.h5"))
        XCTAssertEqual(p.npy.count, 128 + 6 * 12 * p.length * p.length * 4)
    }
}

/// Path patching on tiny-bert (2 layers × 4 heads): patching nothing changes nothing; with no head frozen the
/// logits receiver is the senders' total effect (the masked forward with the senders mean-ablated); a receiver
/// head given the clean input is unchanged.
/// tiny-bert, the first `count` HANS evaluation pairs and their mean activations.
func tinyHANS(_ count: Int) throws -> (BertModel, [Encoding], MeanActivations) {
    let folder = repoRoot + "/Tests/Fixtures/models/tiny-bert"
    let model = try BertModel.load(folder: folder)
    let tok = try BertTokenizer.load(folder: folder)
    let data = try Dataset.load(repoRoot + "/data/hans/heuristics_evaluation_set.txt.zst", limit: count)
    let enc = try encodeAll(data.examples, tokenizer: tok, options: PredictionOptions(maxLength: 64))
    let acc = ActivationAccumulator(model: model)
    _ = try model.encode(TokenBatch(enc), observer: acc)
    return (model, enc, acc.result(fingerprint: model.fingerprint))
}

final class PathPatchingTests: XCTestCase {
    func setup() throws -> (BertModel, [TokenBatch], MeanActivations) {
        let (model, enc, acts) = try tinyHANS(40)
        return (model, [TokenBatch(Array(enc[0..<24])), TokenBatch(Array(enc[24...]))], acts)
    }

    func testNothingIsZeroAndEverythingIsTheTotalEffect() throws {
        let (model, batches, acts) = try setup()
        let receivers = patchReceivers(senders: [(0, 1)], layers: 2, heads: 4)
        XCTAssertEqual(receivers.count, 4 * 3 + 1)
        let none = try pathPatch(
            model: model, batches: batches, senders: [], receivers: receivers, corruption: .mean(acts), entailment: 0)
        for r in receivers.indices { XCTAssertLessThan(none.deltas[r].map(abs).max()!, 1e-5, "\(receivers[r])") }
        let senders = [(layer: 0, head: 1), (layer: 0, head: 3)]
        let total = try pathPatch(
            model: model, batches: batches, senders: senders, receivers: [.logits], corruption: .mean(acts),
            entailment: 0, freeze: false)
        var masks = MaskValues.ones(layers: 2, heads: 4)
        masks.heads[0][1] = 0
        masks.heads[0][3] = 0
        var want: [Double] = []
        for b in batches {
            let clean = try model.forward(b)
            let ablated = try model.forward(b, soft: (masks, .mean(acts)))
            want += zip(
                entailmentLogOdds(ablated, classes: 2, entailment: 0),
                entailmentLogOdds(clean, classes: 2, entailment: 0)
            ).map { $0 - $1 }
        }
        XCTAssertGreaterThan(want.map(abs).max()!, 1e-3, "the senders must matter for the test to mean anything")
        for (g, w) in zip(total.deltas[0], want) { XCTAssertEqual(g, w, accuracy: 1e-5) }
        // With the other heads frozen, layer-1 receivers see only what the senders write; their effects differ
        // from one another and are finite.
        let frozen = try pathPatch(
            model: model, batches: batches, senders: senders, receivers: receivers, corruption: .mean(acts),
            entailment: 0)
        XCTAssertTrue(frozen.deltas.allSatisfy { $0.allSatisfy(\.isFinite) })
        XCTAssertGreaterThan(Set(frozen.receivers.indices.map { (frozen.mean($0) * 1e6).rounded() }).count, 5)
        // Controls: as many heads per layer, seeded.
        let random = matchedRandomSenders(senders, heads: 4, count: 3, seed: 1)
        XCTAssertTrue(
            random.allSatisfy { $0.count == 2 && $0.allSatisfy { $0.layer == 0 } && Set($0.map(\.head)).count == 2 })
        XCTAssertEqual(
            random.map { $0.map(\.head) },
            matchedRandomSenders(senders, heads: 4, count: 3, seed: 1).map { $0.map(\.head) })
    }
}

/// An independent plain BERT in Double (tiny-bert's safetensors read directly, one sequence at a time) with
/// two hooks — rewrite a layer's head contexts, give a head its q/k/v from another layer input — and path
/// patching written with it the long way (one forward per path): one receiver's Δ must equal hcore's.
final class PathPatchingNaiveTwinTests: XCTestCase {
    struct NaiveBert {
        let w: [String: [Double]], L = 2, H = 4, D = 32, d = 8, I = 64
        init(_ path: String) throws {
            let f = try SafetensorsFile(path: path)
            w = Dictionary(uniqueKeysWithValues: try f.names.map { ($0, try f.floats($0).map(Double.init)) })
        }
        func linear(_ x: [Double], _ name: String, out: Int) -> [Double] {
            let W = w[name + ".weight"]!
            let b = w[name + ".bias"]!
            let n = x.count
            return (0..<out).map { o in b[o] + (0..<n).reduce(0.0) { $0 + W[o * n + $1] * x[$1] } }
        }
        /// LayerNorm; `scale` maps the row's own 1/σ to the one used.
        func norm(_ x: [Double], _ name: String, scale: (Double) -> Double = { $0 }) -> [Double] {
            let m = x.reduce(0, +) / Double(x.count)
            let v = x.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(x.count)
            let s = scale(1 / (v + 1e-12).squareRoot())
            return x.indices.map { (x[$0] - m) * s * w[name + ".weight"]![$0] + w[name + ".bias"]![$0] }
        }
        /// Logits; `edit(l, ctx)` rewrites layer l's contexts [T][D]; `qkvFrom(l)` gives per head the inputs its q, k, v read;
        /// `lnScale(l, site, t, own)` the scale layer l's LayerNorm `site` uses for token t.
        func forward(
            _ e: Encoding, edit: (Int, inout [[Double]]) -> Void = { _, _ in },
            qkvFrom: (Int, Int, [[Double]]) -> [[[Double]]] = { _, _, x in [x, x, x] },
            record: (Int, [[Double]], [[Double]]) -> Void = { _, _, _ in },
            lnScale: (Int, Int, Int, Double) -> Double = { $3 }
        ) -> [Double] {
            var x = e.inputIds.indices.map { t in
                norm(
                    (0..<D).map {
                        w["bert.embeddings.word_embeddings.weight"]![Int(e.inputIds[t]) * D + $0]
                            + w["bert.embeddings.position_embeddings.weight"]![t * D + $0]
                            + w["bert.embeddings.token_type_embeddings.weight"]![Int(e.tokenTypeIds[t]) * D + $0]
                    }, "bert.embeddings.LayerNorm")
            }
            let T = x.count
            for l in 0..<L {
                let p = "bert.encoder.layer.\(l)."
                var ctx = [[Double]](repeating: [Double](repeating: 0, count: D), count: T)
                for h in 0..<H {
                    let inputs = qkvFrom(l, h, x)
                    let q = inputs[0].map { linear($0, p + "attention.self.query", out: D) }
                    let k = inputs[1].map { linear($0, p + "attention.self.key", out: D) }
                    let v = inputs[2].map { linear($0, p + "attention.self.value", out: D) }
                    for i in 0..<T {
                        let s = (0..<T).map { j in
                            (0..<d).reduce(0.0) { $0 + q[i][h * d + $1] * k[j][h * d + $1] } / Double(d).squareRoot()
                        }
                        let e = s.map { exp($0 - s.max()!) }
                        let z = e.reduce(0, +)
                        for c in 0..<d { ctx[i][h * d + c] = (0..<T).reduce(0.0) { $0 + e[$1] / z * v[$1][h * d + c] } }
                    }
                }
                record(l, x, ctx)
                edit(l, &ctx)
                let a = (0..<T).map { t in
                    norm(
                        zip(linear(ctx[t], p + "attention.output.dense", out: D), x[t]).map(+),
                        p + "attention.output.LayerNorm"
                    ) { lnScale(l, 0, t, $0) }
                }
                x = a.enumerated().map { t, at in
                    let u = linear(at, p + "intermediate.dense", out: I).map {
                        0.5 * $0 * (1 + erf($0 / 2.0.squareRoot()))
                    }
                    return norm(zip(linear(u, p + "output.dense", out: D), at).map(+), p + "output.LayerNorm") {
                        lnScale(l, 1, t, $0)
                    }
                }
            }
            return linear(linear(x[0], "bert.pooler.dense", out: D).map(tanh), "classifier", out: 2)
        }
    }

    func testOneReceiverAgainstTheNaiveTwin() throws {
        let folder = repoRoot + "/Tests/Fixtures/models/tiny-bert"
        let (model, enc, acts) = try tinyHANS(6)
        let senders = [(layer: 0, head: 2)]
        let receivers: [PatchReceiver] = [
            .head(layer: 1, head: 0, input: "q"), .head(layer: 1, head: 3, input: "v"), .logits,
        ]
        let got = try pathPatch(
            model: model, batches: [TokenBatch(enc)], senders: senders, receivers: receivers, corruption: .mean(acts),
            entailment: 0)
        let naive = try NaiveBert(folder + "/model.safetensors")
        func ld(_ z: [Double]) -> Double { z[0] - z[1] }
        for (n, e) in enc.enumerated() {
            var cleanX: [[[Double]]] = []
            var cleanCtx: [[[Double]]] = []
            let clean = ld(
                naive.forward(
                    e,
                    record: { _, x, c in
                        cleanX.append(x)
                        cleanCtx.append(c)
                    }))
            var patchedX: [[[Double]]] = []
            let pz = naive.forward(
                e,
                edit: { l, ctx in
                    for t in ctx.indices {
                        for h in 0..<4 {
                            for c in 0..<8 {
                                ctx[t][h * 8 + c] =
                                    l == 0 && h == 2
                                    ? Double(acts.avgHead[(l * 4 + h) * 8 + c]) : cleanCtx[l][t][h * 8 + c]
                            }
                        }
                    }
                }, record: { _, x, _ in patchedX.append(x) })
            for (r, receiver) in receivers.enumerated() {
                var want = ld(pz) - clean
                if case .head(let j, let b, let input) = receiver {
                    want =
                        ld(
                            naive.forward(
                                e,
                                qkvFrom: { l, h, x in
                                    guard l == j, h == b else { return [x, x, x] }
                                    return (0..<3).map {
                                        $0 == ["q", "k", "v"].firstIndex(of: input)! ? patchedX[j] : x
                                    }
                                })) - clean
                }
                XCTAssertEqual(got.deltas[r][n], want, accuracy: 2e-6 + 1e-2 * abs(want), "\(receiver) example \(n)")
            }
        }
    }
}

extension PathPatchingNaiveTwinTests {
    /// Paired corruption (each sender's context from a partner sequence of the same length) with LayerNorm
    /// scales frozen at the clean run's, against the naive twin doing the same the long way; a partner equal
    /// to the clean input changes nothing.
    func testPairedCorruptionWithFrozenLayerNormAgainstTheNaiveTwin() throws {
        let folder = repoRoot + "/Tests/Fixtures/models/tiny-bert"
        let (model, all, _) = try tinyHANS(40)
        let byLength = Dictionary(grouping: all.indices, by: { all[$0].inputIds.count }).values.filter { $0.count >= 2 }
            .sorted { $0[0] < $1[0] }
        let pairs = byLength.prefix(4).map { ($0[0], $0[1]) }
        XCTAssertGreaterThanOrEqual(pairs.count, 2)
        let clean = pairs.map { all[$0.0] }
        let partner = pairs.map { all[$0.1] }
        let senders = [(layer: 0, head: 1), (layer: 0, head: 2)]
        let receivers: [PatchReceiver] = [
            .head(layer: 1, head: 0, input: "k"), .head(layer: 1, head: 3, input: "q"), .logits,
        ]
        let got = try pathPatch(
            model: model, batches: [TokenBatch(clean)], senders: senders, receivers: receivers,
            corruption: .paired([TokenBatch(partner)]), entailment: 0, frozenLayerNorm: true)
        let itself = try pathPatch(
            model: model, batches: [TokenBatch(clean)], senders: senders, receivers: receivers,
            corruption: .paired([TokenBatch(clean)]), entailment: 0, frozenLayerNorm: true)
        XCTAssertLessThan(itself.deltas.flatMap { $0 }.map(abs).max()!, 1e-5)
        let recomputed = try pathPatch(
            model: model, batches: [TokenBatch(clean)], senders: senders, receivers: receivers,
            corruption: .paired([TokenBatch(partner)]), entailment: 0)
        let naive = try NaiveBert(folder + "/model.safetensors")
        func ld(_ z: [Double]) -> Double { z[0] - z[1] }
        var frozenDiffers = false
        for n in clean.indices {
            var cleanX: [[[Double]]] = []
            var cleanCtx: [[[Double]]] = []
            var corruptCtx: [[[Double]]] = []
            var scales: [String: Double] = [:]
            let base = ld(
                naive.forward(
                    clean[n],
                    record: { _, x, c in
                        cleanX.append(x)
                        cleanCtx.append(c)
                    },
                    lnScale: { l, s, t, own in
                        scales["\(l).\(s).\(t)"] = own
                        return own
                    }))
            _ = naive.forward(partner[n], record: { _, _, c in corruptCtx.append(c) })
            let frozen: (Int, Int, Int, Double) -> Double = { l, s, t, _ in scales["\(l).\(s).\(t)"]! }
            var patchedX: [[[Double]]] = []
            let pz = naive.forward(
                clean[n],
                edit: { l, ctx in
                    for t in ctx.indices {
                        for h in 0..<4 {
                            for c in 0..<8 {
                                ctx[t][h * 8 + c] =
                                    (l == 0 && (h == 1 || h == 2) ? corruptCtx : cleanCtx)[l][t][h * 8 + c]
                            }
                        }
                    }
                }, record: { _, x, _ in patchedX.append(x) }, lnScale: frozen)
            for (r, receiver) in receivers.enumerated() {
                var want = ld(pz) - base
                if case .head(let j, let b, let input) = receiver {
                    want =
                        ld(
                            naive.forward(
                                clean[n],
                                qkvFrom: { l, h, x in
                                    guard l == j, h == b else { return [x, x, x] }
                                    return (0..<3).map {
                                        $0 == ["q", "k", "v"].firstIndex(of: input)! ? patchedX[j] : x
                                    }
                                }, lnScale: frozen)) - base
                }
                XCTAssertEqual(got.deltas[r][n], want, accuracy: 2e-6 + 1e-2 * abs(want), "\(receiver) pair \(n)")
                if abs(recomputed.deltas[r][n] - want) > 1e-4 { frozenDiffers = true }
            }
        }
        XCTAssertTrue(
            frozenDiffers, "freezing the LayerNorm scales must change some effect, or the test checks nothing")
    }

    /// Partners are of another label, the same heuristic and the same token count; the draw is seeded; a pair
    /// without a candidate is left out and counted.
    func testHANSPairing() {
        func ex(_ label: String, _ heuristic: String) -> Example {
            Example(text: "a", pair: "b", label: label, heuristic: heuristic)
        }
        func enc(_ n: Int) -> Encoding {
            Encoding(inputIds: [Int32](repeating: 1, count: n), tokenTypeIds: [Int32](repeating: 0, count: n))
        }
        let clean = [
            ex("non-entailment", "lexical_overlap"), ex("non-entailment", "subsequence"),
            ex("entailment", "lexical_overlap"),
        ]
        let cleanEnc = [enc(9), enc(9), enc(7)]
        let pool = [
            ex("entailment", "lexical_overlap"), ex("entailment", "lexical_overlap"),
            ex("non-entailment", "lexical_overlap"),
            ex("entailment", "subsequence"), ex("entailment", "lexical_overlap"),
            ex("non-entailment", "lexical_overlap"),
        ]
        let poolEnc = [enc(9), enc(9), enc(9), enc(8), enc(7), enc(7)]
        let (pairs, unmatched) = pairHANS(clean, encodings: cleanEnc, pool: pool, poolEncodings: poolEnc, seed: 3)
        XCTAssertEqual(unmatched, 1)  // the subsequence pair has no 9-token partner
        XCTAssertEqual(pairs.map(\.clean), [0, 2])
        XCTAssertTrue([0, 1].contains(pairs[0].corrupted))
        XCTAssertEqual(pairs[1].corrupted, 5)
        let again = pairHANS(clean, encodings: cleanEnc, pool: pool, poolEncodings: poolEnc, seed: 3)
        XCTAssertEqual(again.pairs.map(\.corrupted), pairs.map(\.corrupted))
        let draws = Set(
            (0..<20).map {
                pairHANS(clean, encodings: cleanEnc, pool: pool, poolEncodings: poolEnc, seed: UInt64($0)).pairs[0]
                    .corrupted
            })
        XCTAssertEqual(draws, [0, 1])
    }
}

/// Presence vs an OOD metric over the matching subnetworks: a unit whose presence drives the metric stands out
/// (large partial r, small permutation p, Benjamini–Hochberg q ≥ p); a unit whose presence is independent does
/// not; q is monotone in p.
final class PresenceStatisticsTests: XCTestCase {
    func testDrivingUnitStandsOut() {
        var rng = SplitMix64(seed: 4)
        let subs = (0..<16).map { i -> StoredSubnetwork in
            let mask: [UInt8] = [UInt8(i % 2), UInt8(rng.next() % 2), 1, UInt8(rng.next() % 2), 1, 0, 1]
            let metric = 0.6 + 0.2 * Double(mask[0]) + 0.01 * rng.uniform()
            return StoredSubnetwork(
                name: "s\(i)", mask: mask, meta: .object([("eval/hans/non-entailment", .float(metric))]))
        }
        XCTAssertEqual(defaultOODMetric(subs), "eval/hans/non-entailment")
        let stats = presenceStatistics(subs, metric: "eval/hans/non-entailment", permutations: 2000, seed: 1)
        let byUnit = Dictionary(uniqueKeysWithValues: stats.map { ($0.unit, $0) })
        XCTAssertNil(byUnit[2])  // kept by all: its presence does not vary
        XCTAssertGreaterThan(byUnit[0]!.r, 0.9)
        XCTAssertLessThan(byUnit[0]!.q, 0.01)
        XCTAssertGreaterThan(byUnit[1]!.p, 0.05)
        for s in stats { XCTAssertGreaterThanOrEqual(s.q, s.p - 1e-12) }
        let sorted = stats.sorted { $0.p < $1.p }
        for (a, b) in zip(sorted, sorted.dropFirst()) { XCTAssertLessThanOrEqual(a.q, b.q + 1e-12) }
    }
}

/// The anti-causal null of composition: one pool per layer pair of H² scores; percentiles, z and the null of
/// a maximum over several senders (a maximum of two uniform draws is below its median with probability ¼).
final class CompositionNullTests: XCTestCase {
    func testPoolsPercentilesAndMaxima() throws {
        let grid = (0..<100).map { (Double($0) + 0.5) / 100 }
        let synthetic = grid.flatMap { g in
            [
                CompositionScore(from: (1, 0), to: (0, 0), q: g, k: g, v: g),
                CompositionScore(from: (2, 0), to: (0, 0), q: g, k: g, v: g),
            ]
        }
        let null = CompositionNull(antiCausal: synthetic)
        XCTAssertEqual(null.percentile(0.5, from: 0, to: 1, kind: 0), 0.5)
        XCTAssertEqual(null.percentile(2, from: 0, to: 2, kind: 2), 1)
        XCTAssertEqual(null.percentile(0, from: 0, to: 1, kind: 1), 0)
        XCTAssertEqual(null.z(0.5, from: 0, to: 1, kind: 0), 0, accuracy: 1e-9)
        XCTAssertEqual(
            null.maxPercentile(0.5, senderLayers: [0, 0], receiver: 1, kind: 0, draws: 8000, seed: 2), 0.25,
            accuracy: 0.02)
        XCTAssertEqual(
            null.maxPercentile(0.5, senderLayers: [0], receiver: 1, kind: 0, draws: 8000, seed: 2), 0.5, accuracy: 0.02)

        let model = try BertModel.load(folder: repoRoot + "/Tests/Fixtures/models/minilm-nli")
        let real = CompositionNull(model: model, foldLayerNorm: false)
        for a in 0..<6 { for b in (a + 1)..<6 { XCTAssertEqual(real.pool(a, b, 0).count, 144, "\(a)-\(b)") } }
        XCTAssertTrue(real.pool(1, 0, 0).isEmpty)
        // Real scores spread over the null: not all above it, not all below it.
        let report = CompositionReport(model: model, foldLayerNorm: false)
        let pct = report.scores.map { real.percentile($0.q, from: $0.from.layer, to: $0.to.layer, kind: 0) }
        XCTAssertTrue(pct.contains { $0 < 0.5 } && pct.contains { $0 > 0.9 })
    }
}
