// Weight-based composition between attention heads (Elhage et al. 2021), in TransformerLens's row-vector
// convention, for BERT's HF Linear weights W[out, in] where head h owns rows/columns h·d ..< (h+1)·d:
//
//   W_Q^h = (W_query[rows h])ᵀ, W_K^h, W_V^h likewise           (hidden × d)
//   W_O^h = (W_out[:, cols h])ᵀ                                 (d × hidden)
//   W_QK^h = W_Q^h (W_K^h)ᵀ,  W_OV^h = W_V^h W_O^h              (hidden × hidden)
//   for head A in an earlier layer than head B:
//     Q(A→B) = ‖W_OV^A W_QK^B‖_F / (‖W_OV^A‖_F ‖W_QK^B‖_F)
//     K(A→B) = ‖W_OV^A (W_QK^B)ᵀ‖_F / (‖W_OV^A‖_F ‖W_QK^B‖_F)
//     V(A→B) = ‖W_OV^A W_OV^B‖_F / (‖W_OV^A‖_F ‖W_OV^B‖_F)
// Biases are ignored. Every product is a chain X·M·Yᵀ with X, Y of shape hidden × d and M of shape d × d, so
// ‖X M Yᵀ‖_F² = tr(Mᵀ (XᵀX) M (YᵀY)) needs only d × d matrices: no hidden × hidden matrix is formed.
//   Q: X = W_V^A, M = W_O^A W_Q^B, Y = W_K^B      K: X = W_V^A, M = W_O^A W_K^B, Y = W_Q^B
//   V: X = W_V^A, M = W_O^A W_V^B, Y = (W_O^B)ᵀ
// `foldLayerNorm` multiplies B's input rows by the gain of the LayerNorm in front of B's layer (the output
// LayerNorm of the layer before it), the part of post-LN that is linear.
import Foundation
import Model

public struct HeadFactors {
    /// Row-major [hidden, d] for Q, K, V; O is stored transposed too, as [hidden, d] (= W_O^hᵀ).
    public let q: [Double], k: [Double], v: [Double], oT: [Double]
}

public struct CompositionScore: Sendable {
    public let from: (layer: Int, head: Int)
    public let to: (layer: Int, head: Int)
    public let q: Double, k: Double, v: Double
}

public struct CompositionReport: Sendable {
    public let scores: [CompositionScore]
    public let baseline: (q: Double, k: Double, v: Double)
    public let foldLayerNorm: Bool
}

/// Factors of every head, taken from the packed weights (exactly the checkpoint's values).
public func headFactors(model: BertModel, foldLayerNorm: Bool = false) -> [[HeadFactors]] {
    let D = model.hidden
    let d = model.headDim
    let H = model.headCount
    return model.layers.enumerated().map { (l, layer) in
        let qkv = layer.qkv.unpacked()  // [3D, D]
        let wo = layer.attentionOutput.unpacked()  // [D, D]
        let gain: [Float]? =
            foldLayerNorm ? (l == 0 ? model.embeddingsLayerNorm.gamma : model.layers[l - 1].outputLayerNorm.gamma) : nil
        return (0..<H).map { h in
            func rows(_ base: Int) -> [Double] {  // (W[rows h])ᵀ as [D, d], input rows scaled by the gain
                var out = [Double](repeating: 0, count: D * d)
                for c in 0..<d {
                    for r in 0..<D { out[r * d + c] = Double(qkv[(base + h * d + c) * D + r]) * Double(gain?[r] ?? 1) }
                }
                return out
            }
            var oT = [Double](repeating: 0, count: D * d)
            for r in 0..<D { for c in 0..<d { oT[r * d + c] = Double(wo[r * D + h * d + c]) } }
            return HeadFactors(q: rows(0), k: rows(D), v: rows(2 * D), oT: oT)
        }
    }
}

/// XᵀY for X, Y of shape [n, d] (row-major): d × d.
func gram(_ x: [Double], _ y: [Double], n: Int, d: Int) -> [Double] {
    var g = [Double](repeating: 0, count: d * d)
    for r in 0..<n {
        for i in 0..<d {
            let xi = x[r * d + i]
            if xi == 0 { continue }
            for j in 0..<d { g[i * d + j] += xi * y[r * d + j] }
        }
    }
    return g
}

/// tr(Mᵀ A M B) for d × d matrices.
func traceChain(_ m: [Double], _ a: [Double], _ b: [Double], d: Int) -> Double {
    // T = A M (d×d), U = M B (d×d) ; tr(Mᵀ A M B) = Σ_ij (A M)_ij (M B)_ij
    var am = [Double](repeating: 0, count: d * d)
    var mb = [Double](repeating: 0, count: d * d)
    for i in 0..<d {
        for k in 0..<d {
            let aik = a[i * d + k]
            for j in 0..<d { am[i * d + j] += aik * m[k * d + j] }
        }
    }
    for i in 0..<d {
        for k in 0..<d {
            let mik = m[i * d + k]
            for j in 0..<d { mb[i * d + j] += mik * b[k * d + j] }
        }
    }
    var t = 0.0
    for i in 0..<(d * d) { t += am[i] * mb[i] }
    return t
}

/// Composition scores for every pair (A in layer i, B in layer j > i).
/// Per head: Gram matrices and the Frobenius norms of W_OV and W_QK.
struct HeadGrams {
    let vv: [Double], qq: [Double], kk: [Double], oo: [Double], ov: Double, qk: Double
    init(_ h: HeadFactors, hidden D: Int, headDim d: Int) {
        vv = gram(h.v, h.v, n: D, d: d)
        qq = gram(h.q, h.q, n: D, d: d)
        kk = gram(h.k, h.k, n: D, d: d)
        oo = gram(h.oT, h.oT, n: D, d: d)
        var ov = 0.0
        var qk = 0.0
        for i in 0..<(d * d) {
            ov += vv[i] * oo[i]
            qk += qq[i] * kk[i]
        }  // tr(G_V G_O) with symmetric Grams
        (self.ov, self.qk) = (ov.squareRoot(), qk.squareRoot())
    }
}

/// Q, K and V composition of head A (writing) into head B (reading), whatever their layers.
func compositionScore(
    _ A: HeadFactors, _ GA: HeadGrams, _ B: HeadFactors, _ GB: HeadGrams, hidden D: Int, headDim d: Int
) -> (q: Double, k: Double, v: Double) {
    // M = W_O^A · X_B  with W_O^A = oTᵀ (d × D): M[i][j] = Σ_r oT[r][i] X_B[r][j]
    let mq = gram(A.oT, B.q, n: D, d: d)
    let mk = gram(A.oT, B.k, n: D, d: d)
    let mv = gram(A.oT, B.v, n: D, d: d)
    return (
        traceChain(mq, GA.vv, GB.kk, d: d).squareRoot() / (GA.ov * GB.qk),
        traceChain(mk, GA.vv, GB.qq, d: d).squareRoot() / (GA.ov * GB.qk),
        traceChain(mv, GA.vv, GB.oo, d: d).squareRoot() / (GA.ov * GB.ov)
    )
}

/// Every pair with A in an earlier layer than B; with `antiCausal`, every pair with A in a later layer — a
/// composition that cannot happen, so its scores are what the formula gives without any (the null).
public func composition(factors f: [[HeadFactors]], hidden D: Int, headDim d: Int, antiCausal: Bool = false)
    -> [CompositionScore]
{
    let L = f.count
    let H = f.first?.count ?? 0
    let g = f.map { layer in layer.map { HeadGrams($0, hidden: D, headDim: d) } }
    var scores: [CompositionScore] = []
    for la in 0..<L {
        for ha in 0..<H {
            for lb in 0..<L where antiCausal ? lb < la : lb > la {
                for hb in 0..<H {
                    let s = compositionScore(f[la][ha], g[la][ha], f[lb][hb], g[lb][hb], hidden: D, headDim: d)
                    scores.append(CompositionScore(from: (la, ha), to: (lb, hb), q: s.q, k: s.k, v: s.v))
                }
            }
        }
    }
    return scores
}

/// Mean composition scores of random Gaussian factors of the same shapes: what "no structure" gives.
public func compositionBaseline(hidden D: Int, headDim d: Int, samples: Int = 16, seed: UInt64 = 0) -> (
    q: Double, k: Double, v: Double
) {
    var state = seed &+ 0x9E37_79B9_7F4A_7C15
    func normal() -> Double {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        let u1 = max(1e-12, Double(state >> 11) / Double(1 << 53))
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        let u2 = Double(state >> 11) / Double(1 << 53)
        return (-2 * log(u1)).squareRoot() * cos(2 * .pi * u2)
    }
    func head() -> HeadFactors {
        HeadFactors(
            q: (0..<(D * d)).map { _ in normal() }, k: (0..<(D * d)).map { _ in normal() },
            v: (0..<(D * d)).map { _ in normal() }, oT: (0..<(D * d)).map { _ in normal() })
    }
    var sq = 0.0
    var sk = 0.0
    var sv = 0.0
    for _ in 0..<samples {
        let s = composition(factors: [[head()], [head()]], hidden: D, headDim: d)[0]
        sq += s.q
        sk += s.k
        sv += s.v
    }
    let n = Double(samples)
    return (sq / n, sk / n, sv / n)
}
