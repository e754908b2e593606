// Composition scores against an independent reference: the hidden × hidden matrices built with plain
// loops from the safetensors weights (not hcore's packed copies), Frobenius norms in Double.
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
        // Folded along the skip path: A's W_OV times S = Π over the LayerNorms from A's layer to B's of C·diag(γ),
        // built here as D × D matrices from the checkpoint's LayerNorm weights.
        let folded = composition(
            factors: headFactors(model: model), hidden: D, headDim: d,
            fold: { skipPathGains(model: model, from: $0, to: $1) })
        for (a, b) in [((0, 0), (1, 3)), ((2, 5), (5, 11))] {
            var S = (0..<(D * D)).map { $0 / D == $0 % D ? 1.0 : 0.0 }
            for l in a.0..<b.0 {
                for name in ["attention.output.LayerNorm", "output.LayerNorm"] {
                    let gamma = try st.floats("bert.encoder.layer.\(l).\(name).weight").map(Double.init)
                    let centreThenScale = (0..<(D * D)).map { idx -> Double in
                        let (r, c) = (idx / D, idx % D)
                        return ((r == c ? 1 : 0) - 1 / Double(D)) * gamma[c]
                    }
                    S = matmul(S, centreThenScale)
                }
            }
            let A = try matrices(a.0, a.1)
            let B = try matrices(b.0, b.1)
            let ovS = matmul(A.ov, S)
            let q = frob(matmul(ovS, B.qk)) / (frob(ovS) * frob(B.qk))
            let v = frob(matmul(ovS, B.ov)) / (frob(ovS) * frob(B.ov))
            let s = folded.first { $0.from == a && $0.to == b }!
            XCTAssertEqual(s.q, q, accuracy: 1e-5, "folded Q \(a)→\(b)")
            XCTAssertEqual(s.v, v, accuracy: 1e-5, "folded V \(a)→\(b)")
            let raw = scores.first { $0.from == a && $0.to == b }!
            XCTAssertGreaterThan(abs(raw.q - s.q), 1e-4, "folding must change the score for the test to mean anything")
        }
        let base = compositionBaseline(hidden: D, headDim: d, samples: 4)
        XCTAssert(base.q > 0 && base.q < 0.5 && base.v > 0 && base.v < 0.5, "\(base)")
    }
}
