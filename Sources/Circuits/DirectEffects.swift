// Where in the pair a unit matters, and how much of what it writes reaches the prediction directly.
//
//   by position  activation patching of one unit at a time on one part of the pair — [CLS], the premise, the
//                hypothesis, the two [SEP]s: its output at those positions replaced by its corrupted value
//                (mean, or a partner's output at the same positions), everything after recomputed; Δ of the
//                entailment log-odds, per example
//   direct       direct logit attribution of a head or MLP: its output at [CLS] minus its mean output, carried
//                along the residual stream alone — through every later LayerNorm with the clean run's scale
//                (centring, γ/σ; β adds nothing that depends on the unit) — to the final [CLS] state, then
//                through the pooler linearised at the clean point (tanh' = 1 − tanh²) and the classifier, dotted
//                with ∂LD/∂logits. Exact for the residual path up to the pooler; first order in the pooler.
import Foundation
import Kernels
import Model
import Tokenizer

/// The parts of a pair activation patching works on.
public enum PairPart: String, CaseIterable, Sendable {
    case cls = "[CLS]"
    case premise, hypothesis
    case separators = "[SEP]"

    func positions(_ s: PairSegments) -> [Int] {
        switch self {
        case .cls: return [s.cls]
        case .premise: return s.premise
        case .hypothesis: return s.hypothesis
        case .separators: return s.separators
        }
    }
}

/// Per unit (senders' order: heads, then MLPs) and part: Δ per example.
public struct PositionEffects: Sendable {
    public var units: [String]
    public var deltas: [[PairPart: [Double]]]
}

/// Activation patching of each of `units` on each part of the pairs in `batches` (see the file comment).
public func positionPatching(
    model: BertModel, batches: [TokenBatch], encodings: [[Encoding]], units: PatchSenders,
    corruption: PatchCorruption, entailment: Int, pool: ThreadPool = .shared
) throws -> PositionEffects {
    try checkCorruption(model: model, corruption, batches: batches)
    let (d, D) = (model.headDim, model.hidden)
    let single = units.heads.map { PatchSenders(heads: [$0]) } + units.mlps.map { PatchSenders(heads: [], mlps: [$0]) }
    var out = [[PairPart: [Double]]](repeating: [:], count: single.count)
    func ld(_ z: [Float]) -> [Double] { entailmentLogOdds(z, classes: model.config.numLabels, entailment: entailment) }
    for (bi, batch) in batches.enumerated() {
        let cleanLD = ld(try model.forward(batch, pool: pool))
        // Rows of each part, over the batch's sequences.
        let parts = Dictionary(
            uniqueKeysWithValues: PairPart.allCases.map { part in
                (
                    part,
                    encodings[bi].enumerated().flatMap { s, e in
                        (PairSegments(e).map { part.positions($0) } ?? []).map { batch.offsets[s] + $0 }
                    }
                )
            })
        for (k, unit) in single.enumerated() {
            let corrupted = try sendersCorrupted(
                model: model, corruption: corruption, batch: bi, senders: unit, tokens: batch.tokenCount,
                subnetwork: nil, pool: pool)
            for part in PairPart.allCases {
                let rows = parts[part]!
                let run = LayerInputs(
                    D: D, recording: false,
                    editMLP: { l, m, _ in
                        guard let source = corrupted.mlps[l] else { return }
                        for r in rows { (m + r * D).update(from: Array(source[(r * D)..<((r + 1) * D)]), count: D) }
                    },
                    edit: { l, ctx, _ in
                        for (layer, h) in unit.heads where layer == l {
                            for r in rows {
                                for e in 0..<d { ctx[r * D + h * d + e] = corrupted.contexts[l][r * D + h * d + e] }
                            }
                        }
                    })
                let z = ld(try model.forward(batch, observer: run, pool: pool))
                out[k][part, default: []] += zip(z, cleanLD).map { $0 - $1 }
            }
        }
    }
    return PositionEffects(units: single.map { $0.names[0] }, deltas: out)
}

/// Direct logit attribution of every head and MLP (see the file comment): [unit][example], units in store order.
public func directLogitAttribution(
    model: BertModel, batches: [TokenBatch], activations: MeanActivations, entailment: Int,
    pool: ThreadPool = .shared
) throws -> [[Double]] {
    try model.checkActivations(activations)
    guard let pooler = model.pooler, let classifier = model.classifier else {
        throw ModelError.noClassifier(path: model.folder)
    }
    let (L, H, d, D, C) = (model.layerCount, model.headCount, model.headDim, model.hidden, model.config.numLabels)
    let wp = pooler.unpacked().map(Double.init)  // [D, D] out × in
    let wc = classifier.unpacked().map(Double.init)  // [C, D]
    let wo = model.layers.map { $0.attentionOutput.unpacked() }  // [D, D]
    var out = [[Double]](repeating: [], count: L * H + L)
    for batch in batches {
        let clean = LayerInputs(D: D, recordScales: true)
        let logits = try model.forward(batch, observer: clean, pool: pool)
        for s in 0..<batch.count {
            let row = batch.offsets[s]  // the [CLS] row
            let g = logOddsGradient(Array(logits[(s * C)..<((s + 1) * C)]), entailment: entailment)
            // ∂LD/∂(final [CLS] state), through classifier, the linearised tanh and the pooler dense.
            let pooled = clean.pooledOutput[(s * D)..<((s + 1) * D)].map(Double.init)
            let dPooled = (0..<D).map { i in
                (0..<C).reduce(0.0) { $0 + g[$1] * wc[$1 * D + i] } * (1 - pooled[i] * pooled[i])
            }
            let dFinal = (0..<D).map { j in (0..<D).reduce(0.0) { $0 + dPooled[$1] * wp[$1 * D + j] } }
            // Back along the residual stream: through each LayerNorm (frozen scale s, gain γ, centring), the
            // gradient of a site's input is C(γ ⊙ s · grad of its output); layer l's attention output enters at
            // site (l, 0), its MLP at site (l, 1).
            var grad = dFinal
            var atSite: [Int: [Double]] = [:]
            for l in stride(from: L - 1, through: 0, by: -1) {
                for site in [1, 0] {
                    let s1 = Double(clean.recordedScales(layer: l, site: site)![row])
                    let gamma =
                        site == 1 ? model.layers[l].outputLayerNorm.gamma : model.layers[l].attentionLayerNorm.gamma
                    let scaled = (0..<D).map { grad[$0] * Double(gamma[$0]) * s1 }
                    let mean = scaled.reduce(0, +) / Double(D)
                    grad = scaled.map { $0 - mean }
                    atSite[l * 2 + site] = grad
                }
            }
            for l in 0..<L {
                let gAttn = atSite[l * 2]!
                for h in 0..<H {
                    // (ctx_h − avg_h) W_O^h at [CLS], dotted with the gradient at layer l's attention LayerNorm.
                    var total = 0.0
                    for r in 0..<D {
                        var o = 0.0
                        for e in 0..<d {
                            let delta =
                                clean.contexts[l][row * D + h * d + e] - activations.avgHead[(l * H + h) * d + e]
                            o += Double(wo[l][r * D + h * d + e]) * Double(delta)
                        }
                        total += gAttn[r] * o
                    }
                    out[l * H + h].append(total)
                }
                let gMLP = atSite[l * 2 + 1]!
                let m = clean.mlpOutputs[l]!
                out[L * H + l].append(
                    (0..<D).reduce(0.0) { $0 + gMLP[$1] * Double(m[row * D + $1] - activations.avgMLP[l * D + $1]) })
            }
        }
    }
    return out
}

/// ∂LD/∂z for LD = z_e − logsumexp(z_c, c ≠ e): 1 at e, −softmax over the others elsewhere.
func logOddsGradient(_ z: [Float], entailment e: Int) -> [Double] {
    let rest = z.indices.filter { $0 != e }
    let m = rest.map { Double(z[$0]) }.max() ?? 0
    let sum = rest.reduce(0.0) { $0 + exp(Double(z[$1]) - m) }
    return z.indices.map { $0 == e ? 1 : -exp(Double(z[$0]) - m) / sum }
}
