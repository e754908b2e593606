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
// With `foldLayerNorm` the skip path from A to B is folded in exactly: in post-LN BERT, what A writes passes
// 2(j − i) LayerNorms (attention.output and output of layer i, then both of every layer up to j − 1) before
// B reads it, each of which centres its input, divides it by its own σ and multiplies it by its gain γ (then
// adds β). The σ are per-token scalars and cancel in the normalised score, β adds a constant that no head
// writes, so the map A's output goes through is S = C·diag(γ₁)·C·diag(γ₂)···C·diag(γ_m) (C: centring), and A's
// W_OV becomes W_OV^A S (`skipPathFold`). Without it, scores are of the raw weights.
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
public func headFactors(model: BertModel) -> [[HeadFactors]] {
    let D = model.hidden
    let d = model.headDim
    let H = model.headCount
    return model.layers.map { layer in
        let qkv = layer.qkv.unpacked()  // [3D, D]
        let wo = layer.attentionOutput.unpacked()  // [D, D]
        return (0..<H).map { h in
            func rows(_ base: Int) -> [Double] {  // (W[rows h])ᵀ as [D, d]
                var out = [Double](repeating: 0, count: D * d)
                for c in 0..<d { for r in 0..<D { out[r * d + c] = Double(qkv[(base + h * d + c) * D + r]) } }
                return out
            }
            var oT = [Double](repeating: 0, count: D * d)
            for r in 0..<D { for c in 0..<d { oT[r * d + c] = Double(wo[r * D + h * d + c]) } }
            return HeadFactors(q: rows(0), k: rows(D), v: rows(2 * D), oT: oT)
        }
    }
}

/// The gains of the LayerNorms on the skip path from layer i's attention output to layer j's input, in order.
public func skipPathGains(model: BertModel, from i: Int, to j: Int) -> [[Float]] {
    (i..<j).flatMap { k in [model.layers[k].attentionLayerNorm.gamma, model.layers[k].outputLayerNorm.gamma] }
}

/// A's factors with its output mapped through S = C·diag(γ₁)···C·diag(γ_m) (the file comment): each column v of
/// W_O^Aᵀ becomes Sᵀv, i.e. centred and scaled by γ₁, then centred and scaled by γ₂, and so on.
public func skipPathFold(_ a: HeadFactors, gains: [[Float]], hidden D: Int, headDim d: Int) -> HeadFactors {
    var oT = a.oT
    for gamma in gains {
        for c in 0..<d {
            var mean = 0.0
            for r in 0..<D { mean += oT[r * d + c] }
            mean /= Double(D)
            for r in 0..<D { oT[r * d + c] = (oT[r * d + c] - mean) * Double(gamma[r]) }
        }
    }
    return HeadFactors(q: a.q, k: a.k, v: a.v, oT: oT)
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
/// composition that cannot happen, so its scores are what the formula gives without any (the null). `fold`
/// gives, for a pair of layers (earlier, later), the gains A's output is folded through (nil: none).
public func composition(
    factors f: [[HeadFactors]], hidden D: Int, headDim d: Int, antiCausal: Bool = false,
    fold: ((Int, Int) -> [[Float]])? = nil
) -> [CompositionScore] {
    let L = f.count
    let H = f.first?.count ?? 0
    let g = f.map { layer in layer.map { HeadGrams($0, hidden: D, headDim: d) } }
    var scores: [CompositionScore] = []
    for la in 0..<L {
        for lb in 0..<L where antiCausal ? lb < la : lb > la {
            // A's factors for this layer pair: folded along the skip path of (earlier, later) when asked.
            let gains = fold?(min(la, lb), max(la, lb))
            let writers = f[la].map { a in gains.map { skipPathFold(a, gains: $0, hidden: D, headDim: d) } ?? a }
            let writerGrams = gains == nil ? g[la] : writers.map { HeadGrams($0, hidden: D, headDim: d) }
            for ha in 0..<H {
                for hb in 0..<H {
                    let s = compositionScore(writers[ha], writerGrams[ha], f[lb][hb], g[lb][hb], hidden: D, headDim: d)
                    scores.append(CompositionScore(from: (la, ha), to: (lb, hb), q: s.q, k: s.k, v: s.v))
                }
            }
        }
    }
    return scores.sorted {
        ($0.from.layer, $0.from.head, $0.to.layer, $0.to.head) < ($1.from.layer, $1.from.head, $1.to.layer, $1.to.head)
    }
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
