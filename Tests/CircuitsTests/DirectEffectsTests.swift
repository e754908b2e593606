// Direct logit attribution and activation patching by position against the naive Double twin.
import Checkpoint
import Eval
import Foundation
import Kernels
import Model
import TestSupport
import Tokenizer
import XCTest

@testable import Circuits

final class DirectEffectsTests: XCTestCase {
    typealias Twin = PathPatchingNaiveTwinTests.NaiveBert

    /// The twin runs the pair with one unit at its mean and every other head, every MLP and every LayerNorm
    /// scale frozen at the clean run's: the final [CLS] state then differs only by what travels the residual
    /// stream. Through the pooler linearised at the clean point and the classifier, that change of the log-odds
    /// is the direct logit attribution.
    func testDirectLogitAttributionAgainstTheTwin() throws {
        let folder = repoRoot + "/Tests/Fixtures/models/tiny-bert"
        let (model, enc, acts) = try tinyHANS(4)
        let got = try directLogitAttribution(
            model: model, batches: [TokenBatch(enc)], activations: acts, entailment: 0)
        XCTAssertEqual(got.count, 2 * 4 + 2)
        let twin = try Twin(folder + "/model.safetensors")
        let (D, H, d) = (32, 4, 8)
        for (n, e) in enc.enumerated() {
            var ctx: [[[Double]]] = []
            var mlp: [String: [Double]] = [:]
            var scales: [String: Double] = [:]
            var h0: [Double] = []
            let logits = twin.forward(
                e, record: { _, _, c in ctx.append(c) },
                lnScale: { l, s, t, own in
                    scales["\(l).\(s).\(t)"] = own
                    return own
                }, editMLP: { l, t, m in mlp["\(l).\(t)"] = m }, final: { h0 = $0 })
            let frozen: (Int, Int, Int, Double) -> Double = { l, s, t, _ in scales["\(l).\(s).\(t)"]! }
            // ∂LD/∂(final [CLS]) with the pooler linearised: LD = z0 − z1.
            let wp = twin.w["bert.pooler.dense.weight"]!
            let wc = twin.w["classifier.weight"]!
            let z = twin.linear(h0, "bert.pooler.dense", out: D)
            let dPooled = (0..<D).map { i in (wc[i] - wc[D + i]) * (1 - tanh(z[i]) * tanh(z[i])) }
            func linearised(_ h: [Double]) -> Double {
                (0..<D).reduce(0.0) { acc, j in
                    acc + (0..<D).reduce(0.0) { $0 + dPooled[$1] * wp[$1 * D + j] } * (h[j] - h0[j])
                }
            }
            for unit in 0..<(2 * H + 2) {
                var h1: [Double] = []
                _ = twin.forward(
                    e,
                    edit: { l, c in
                        for t in c.indices {
                            for hh in 0..<H {
                                for k in 0..<d {
                                    c[t][hh * d + k] =
                                        unit == l * H + hh
                                        ? Double(acts.avgHead[(l * H + hh) * d + k]) : ctx[l][t][hh * d + k]
                                }
                            }
                        }
                    }, lnScale: frozen,
                    editMLP: { l, t, m in
                        m = unit == 2 * H + l ? (0..<D).map { Double(acts.avgMLP[l * D + $0]) } : mlp["\(l).\(t)"]!
                    }, final: { h1 = $0 })
                // DLA is the clean output minus the mean's: the opposite of what replacing it by its mean does.
                let want = -linearised(h1)
                XCTAssertEqual(got[unit][n], want, accuracy: 1e-5 + 1e-3 * abs(want), "unit \(unit) pair \(n)")
            }
            _ = logits
        }
        XCTAssertGreaterThan(got.flatMap { $0 }.map(abs).max()!, 1e-3, "some unit must matter")
    }

    /// One head's context replaced by its mean on one part of the pair, everything after recomputed: Δ of the
    /// log-odds equals the twin's.
    func testPositionPatchingAgainstTheTwin() throws {
        let folder = repoRoot + "/Tests/Fixtures/models/tiny-bert"
        let (model, enc, acts) = try tinyHANS(3)
        let units = PatchSenders(heads: [(0, 2)], mlps: [1])
        let got = try positionPatching(
            model: model, batches: [TokenBatch(enc)], encodings: [enc], units: units, corruption: .mean(acts),
            entailment: 0)
        XCTAssertEqual(got.units, ["a0.h2", "a1.mlp"])
        let twin = try Twin(folder + "/model.safetensors")
        func ld(_ z: [Double]) -> Double { z[0] - z[1] }
        for (n, e) in enc.enumerated() {
            let seg = try XCTUnwrap(PairSegments(e))
            let clean = ld(twin.forward(e))
            for part in PairPart.allCases {
                let rows = Set(part.positions(seg))
                let head = ld(
                    twin.forward(
                        e,
                        edit: { l, c in
                            guard l == 0 else { return }
                            for t in rows {
                                for k in 0..<8 { c[t][2 * 8 + k] = Double(acts.avgHead[(0 * 4 + 2) * 8 + k]) }
                            }
                        }))
                let mlp = ld(
                    twin.forward(
                        e,
                        editMLP: { l, t, m in
                            if l == 1 && rows.contains(t) { m = (0..<32).map { Double(acts.avgMLP[32 + $0]) } }
                        }))
                XCTAssertEqual(
                    got.deltas[0][part]![n], head - clean, accuracy: 2e-6 + 1e-2 * abs(head - clean), "\(part)")
                XCTAssertEqual(
                    got.deltas[1][part]![n], mlp - clean, accuracy: 2e-6 + 1e-2 * abs(mlp - clean), "\(part)")
            }
        }
    }

    /// Segments from token types: [CLS], the premise, its [SEP], the hypothesis, the final [SEP].
    func testPairSegments() {
        let e = Encoding(inputIds: [101, 5, 6, 102, 7, 8, 9, 102], tokenTypeIds: [0, 0, 0, 0, 1, 1, 1, 1])
        let s = PairSegments(e)!
        XCTAssertEqual(s.premise, [1, 2])
        XCTAssertEqual(s.hypothesis, [4, 5, 6])
        XCTAssertEqual(s.separators, [3, 7])
        XCTAssertNil(PairSegments(Encoding(inputIds: [101, 5, 102], tokenTypeIds: [0, 0, 0])))
    }
}
