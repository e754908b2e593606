// An independent plain BERT in Double (tiny-bert's safetensors read directly, one sequence at a time) with
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
        /// `editMLP(l, t, m)` rewrites layer l's MLP output at token t; `masks` pulls each head's context and
        /// each MLP's output towards its mean by its mask value (a subnetwork).
        func forward(
            _ e: Encoding, edit: (Int, inout [[Double]]) -> Void = { _, _ in },
            qkvFrom: (Int, Int, [[Double]]) -> [[[Double]]] = { _, _, x in [x, x, x] },
            record: (Int, [[Double]], [[Double]]) -> Void = { _, _, _ in },
            lnScale: (Int, Int, Int, Double) -> Double = { $3 },
            editMLP: (Int, Int, inout [Double]) -> Void = { _, _, _ in },
            masks: (MaskValues, MeanActivations)? = nil, final: ([Double]) -> Void = { _ in }
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
                if let (m, acts) = masks {
                    for t in 0..<T {
                        for h in 0..<H {
                            let z = Double(m.heads[l][h])
                            for c in 0..<d {
                                let avg = Double(acts.avgHead[(l * H + h) * d + c])
                                ctx[t][h * d + c] = z * ctx[t][h * d + c] + (1 - z) * avg
                            }
                        }
                    }
                }
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
                    var m = linear(u, p + "output.dense", out: D)
                    editMLP(l, t, &m)
                    if let (mask, acts) = masks {
                        let z = Double(mask.mlps[l])
                        m = m.indices.map { z * m[$0] + (1 - z) * Double(acts.avgMLP[l * D + $0]) }
                    }
                    return norm(zip(m, at).map(+), p + "output.LayerNorm") { lnScale(l, 1, t, $0) }
                }
            }
            final(x[0])
            return linear(linear(x[0], "bert.pooler.dense", out: D).map(tanh), "classifier", out: 2)
        }
    }

    func testOneReceiverAgainstTheNaiveTwin() throws {
        let folder = repoRoot + "/Tests/Fixtures/models/tiny-bert"
        let (model, enc, acts) = try tinyHANS(6)
        let senders = PatchSenders(heads: [(layer: 0, head: 2)])
        let receivers: [PatchReceiver] = [
            .head(layer: 1, head: 0, input: "q"), .head(layer: 1, head: 3, input: "v"), .logits,
        ]
        var recompute = PatchSettings()
        recompute.frozenLayerNorm = false
        let got = try pathPatch(
            model: model, batches: [TokenBatch(enc)], senders: senders, receivers: receivers, corruption: .mean(acts),
            entailment: 0, settings: recompute)
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
                        ld(naive.receiverForward(e, j, b, input, patched: patchedX))
                        - clean
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
        let senders = PatchSenders(heads: [(layer: 0, head: 1), (layer: 0, head: 2)])
        let receivers: [PatchReceiver] = [
            .head(layer: 1, head: 0, input: "k"), .head(layer: 1, head: 3, input: "q"), .logits,
        ]
        let got = try pathPatch(
            model: model, batches: [TokenBatch(clean)], senders: senders, receivers: receivers,
            corruption: .paired([TokenBatch(partner)]), entailment: 0)
        let itself = try pathPatch(
            model: model, batches: [TokenBatch(clean)], senders: senders, receivers: receivers,
            corruption: .paired([TokenBatch(clean)]), entailment: 0)
        XCTAssertLessThan(itself.deltas.flatMap { $0 }.map(abs).max()!, 1e-5)
        var recompute = PatchSettings()
        recompute.frozenLayerNorm = false
        let recomputed = try pathPatch(
            model: model, batches: [TokenBatch(clean)], senders: senders, receivers: receivers,
            corruption: .paired([TokenBatch(partner)]), entailment: 0, settings: recompute)
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
                        ld(naive.receiverForward(clean[n], j, b, input, patched: patchedX, lnScale: frozen))
                        - base
                }
                XCTAssertEqual(got.deltas[r][n], want, accuracy: 2e-6 + 1e-2 * abs(want), "\(receiver) pair \(n)")
                if abs(recomputed.deltas[r][n] - want) > 1e-4 { frozenDiffers = true }
            }
        }
        XCTAssertTrue(
            frozenDiffers, "freezing the LayerNorm scales must change some effect, or the test checks nothing")
    }

    /// Partners are of another label and the same token count, of the same heuristic when one exists; the draw
    /// is seeded; a pair without a candidate is left out and counted.
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
        let (pairs, unmatched, other) = pairHANS(
            clean, encodings: cleanEnc, pool: pool, poolEncodings: poolEnc, seed: 3)
        // The subsequence pair has no 9-token partner of its heuristic: it takes one of another.
        XCTAssertEqual(unmatched, 0)
        XCTAssertEqual(other, 1)
        XCTAssertEqual(pairs.map(\.clean), [0, 1, 2])
        XCTAssertTrue([0, 1].contains(pairs[0].corrupted))
        XCTAssertTrue([0, 1].contains(pairs[1].corrupted))
        XCTAssertEqual(pairs[2].corrupted, 5)
        // A 6-token clean pair has no partner at all: left out and counted.
        XCTAssertEqual(
            pairHANS([clean[0]], encodings: [enc(6)], pool: pool, poolEncodings: poolEnc, seed: 3).unmatched, 1)
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

extension PathPatchingNaiveTwinTests {
    /// A head and an MLP as senders, mean-corrupted, inside a subnetwork (one layer-1 head and layer 1's MLP
    /// half-pruned, one head pruned), LayerNorm scales frozen (the default): every receiver and both total
    /// effects against the naive twin done the long way.
    func testMLPSendersInsideASubnetworkAgainstTheNaiveTwin() throws {
        let folder = repoRoot + "/Tests/Fixtures/models/tiny-bert"
        let (model, enc, acts) = try tinyHANS(5)
        var masks = MaskValues.ones(layers: 2, heads: 4)
        masks.heads[1][2] = 0
        masks.heads[1][1] = 0.5
        masks.mlps[1] = 0.5
        var settings = PatchSettings()
        settings.subnetwork = (masks, .mean(acts))
        let senders = PatchSenders(heads: [(layer: 0, head: 3)], mlps: [0])
        let receivers: [PatchReceiver] = [
            .head(layer: 1, head: 0, input: "q"), .head(layer: 1, head: 1, input: "k"),
            .head(layer: 1, head: 2, input: "v"), .logits,
        ]
        let got = try pathPatch(
            model: model, batches: [TokenBatch(enc)], senders: senders, receivers: receivers, corruption: .mean(acts),
            entailment: 0, settings: settings)
        let naive = try NaiveBert(folder + "/model.safetensors")
        func ld(_ z: [Double]) -> Double { z[0] - z[1] }
        let sub = (masks, acts)
        for (n, e) in enc.enumerated() {
            var cleanCtx: [[[Double]]] = []
            var scales: [String: Double] = [:]
            let clean = ld(
                naive.forward(
                    e, record: { _, _, c in cleanCtx.append(c) },
                    lnScale: { l, s, t, own in
                        scales["\(l).\(s).\(t)"] = own
                        return own
                    }, masks: sub))
            let frozen: (Int, Int, Int, Double) -> Double = { l, s, t, _ in scales["\(l).\(s).\(t)"]! }
            let meanMLP: (Int, Int, inout [Double]) -> Void = { l, _, m in
                if l == 0 { m = (0..<32).map { Double(acts.avgMLP[$0]) } }
            }
            func corruptHead(_ freezeOthers: Bool) -> (Int, inout [[Double]]) -> Void {
                { l, ctx in
                    for t in ctx.indices {
                        for h in 0..<4 {
                            for c in 0..<8 {
                                if l == 0 && h == 3 {
                                    ctx[t][h * 8 + c] = Double(acts.avgHead[(l * 4 + h) * 8 + c])
                                } else if freezeOthers {
                                    ctx[t][h * 8 + c] = cleanCtx[l][t][h * 8 + c]
                                }
                            }
                        }
                    }
                }
            }
            var patchedX: [[[Double]]] = []
            let pz = naive.forward(
                e, edit: corruptHead(true), record: { _, x, _ in patchedX.append(x) }, lnScale: frozen,
                editMLP: meanMLP, masks: sub)
            for (r, receiver) in receivers.enumerated() {
                var want = ld(pz) - clean
                if case .head(let j, let b, let input) = receiver {
                    want =
                        ld(naive.receiverForward(e, j, b, input, patched: patchedX, lnScale: frozen, masks: sub))
                        - clean
                }
                XCTAssertEqual(got.deltas[r][n], want, accuracy: 2e-6 + 1e-2 * abs(want), "\(receiver) pair \(n)")
            }
            // The pruned head reads nothing; the total effects, LayerNorms frozen and recomputed.
            XCTAssertLessThan(abs(got.deltas[2][n]), 1e-6)
            let totalFrozen =
                ld(naive.forward(e, edit: corruptHead(false), lnScale: frozen, editMLP: meanMLP, masks: sub)) - clean
            let totalRecomputed = ld(naive.forward(e, edit: corruptHead(false), editMLP: meanMLP, masks: sub)) - clean
            XCTAssertEqual(got.total[n], totalFrozen, accuracy: 2e-6 + 1e-2 * abs(totalFrozen))
            XCTAssertEqual(got.totalRecomputed[n], totalRecomputed, accuracy: 2e-6 + 1e-2 * abs(totalRecomputed))
            XCTAssertGreaterThan(abs(totalRecomputed), 1e-3, "the senders must matter for the test to mean anything")
        }
    }
}

extension PathPatchingNaiveTwinTests.NaiveBert {
    /// Logits with head b of layer j reading its `input` ("q", "k" or "v") from `patched` (run P's layer inputs)
    /// and the other two from the clean run; everything else as `forward` with the same `lnScale` and `masks`.
    func receiverForward(
        _ e: Encoding, _ j: Int, _ b: Int, _ input: Character, patched: [[[Double]]],
        lnScale: (Int, Int, Int, Double) -> Double = { $3 }, masks: (MaskValues, MeanActivations)? = nil
    ) -> [Double] {
        forward(
            e,
            qkvFrom: { l, h, x in
                guard l == j, h == b else { return [x, x, x] }
                return (0..<3).map { $0 == ["q", "k", "v"].firstIndex(of: input)! ? patched[j] : x }
            }, lnScale: lnScale, masks: masks)
    }
}
