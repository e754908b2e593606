// Path patching (Wang et al. 2022; Goldowsky-Dill et al. 2023): how much of the senders' effect on the
// prediction flows through one receiver.
//
//   senders    a set of heads (the core by default); corrupted = each sender's context replaced by its mean
//              activation (the ablation the paper prunes with), or by its context at the same position on a
//              paired corrupted input of the same length (HANS: a pair of the other label, `pairHANS`)
//   run P      clean input, senders corrupted, every other head frozen at its clean context (`freeze`;
//              MLPs recompute; LayerNorms recompute their scales, or with `frozenLayerNorm` keep the clean
//              run's 1/σ per token and only centre): each layer's input x_j^P then differs from the clean x_j
//              only by what the senders write, through the residual stream and the MLPs
//   receivers  head B of a later layer j reading through its query, key or value input: B's q (or k, or v)
//              computed from x_j^P, the other two from x_j; B's context from those; then the clean forward
//              from layer j with only B's context changed, everything downstream recomputed. Or the logits:
//              run P's own output (the senders' effect not passing through any later head)
//   measure    LD = z_entailment − log Σ_{c ≠ entailment} exp z_c (entailment vs non-entailment log-odds);
//              Δ = LD(patched) − LD(clean), averaged per HANS subcase and overall
//   controls   random sender sets of the same size and layers (seeded); each receiver's Δ is placed among
//              theirs as a percentile of |Δ|
// With `freeze` off, run P is the plain ablation of the senders, so the logits receiver gives their total
// effect (what the tests check). The receivers' runs use the same LayerNorm rule as run P.
import Foundation
import Kernels
import Model

public enum PatchReceiver: Hashable, Sendable, CustomStringConvertible {
    case head(layer: Int, head: Int, input: Character)  // input: "q", "k" or "v"
    case logits
    public var description: String {
        switch self {
        case .head(let l, let h, let i): return "a\(l).h\(h).\(i)"
        case .logits: return "logits"
        }
    }
}

/// Mean Δ of the entailment log-odds per receiver, over `batches`, with each example's Δ also grouped by `groups`.
public struct PatchEffects: Sendable {
    public var receivers: [PatchReceiver]
    /// [receiver][example], in the order of the batches' sequences.
    public var deltas: [[Double]]
    public func mean(_ r: Int, examples: [Int]? = nil) -> Double {
        let xs = examples.map { $0.map { deltas[r][$0] } } ?? deltas[r]
        return xs.isEmpty ? .nan : xs.reduce(0, +) / Double(xs.count)
    }
}

/// Entailment-vs-rest log-odds of each row of logits [B, C].
public func entailmentLogOdds(_ logits: [Float], classes C: Int, entailment e: Int) -> [Double] {
    (0..<(logits.count / C)).map { b in
        let row = (0..<C).map { Double(logits[b * C + $0]) }
        let rest = (0..<C).filter { $0 != e }.map { row[$0] }
        let m = rest.max() ?? 0
        return row[e] - (m + log(rest.reduce(0) { $0 + exp($1 - m) }))
    }
}

/// The receivers every sender set is measured on: each head of a layer after the senders' first layer (senders
/// excluded) through q, k and v, then the logits.
public func patchReceivers(senders: [(layer: Int, head: Int)], layers L: Int, heads H: Int) -> [PatchReceiver] {
    let first = senders.map(\.layer).min() ?? L
    let senderSet = Set(senders.map { $0.layer * H + $0.head })
    var out: [PatchReceiver] = []
    for l in 0..<L where l > first {
        for h in 0..<H where !senderSet.contains(l * H + h) {
            for i in "qkv" { out.append(.head(layer: l, head: h, input: i)) }
        }
    }
    return out + [.logits]
}

/// What replaces a sender's output in run P.
public enum PatchCorruption {
    /// Its mean activation (one row per head, every position).
    case mean(MeanActivations)
    /// Its context on a corrupted input: one batch per clean batch, with the same sequence lengths.
    case paired([TokenBatch])
}

/// Path patching of `senders` to every receiver in `receivers` (see the file comment).
public func pathPatch(
    model: BertModel, batches: [TokenBatch], senders: [(layer: Int, head: Int)], receivers: [PatchReceiver],
    corruption: PatchCorruption, entailment: Int, freeze: Bool = true, frozenLayerNorm: Bool = false,
    pool: ThreadPool = .shared
) throws -> PatchEffects {
    let L = model.layerCount
    let H = model.headCount
    let d = model.headDim
    let D = model.hidden
    let C = model.config.numLabels
    switch corruption {
    case .mean(let activations): try model.checkActivations(activations)
    case .paired(let corrupted):
        guard corrupted.count == batches.count, zip(corrupted, batches).allSatisfy({ $0.offsets == $1.offsets }) else {
            throw ModelError.badInput(
                "paired corruption needs one corrupted sequence of the same length per clean sequence")
        }
    }
    let senderSet = Set(senders.map { $0.layer * H + $0.head })
    let headWeights = (0..<L).map { l in (0..<H).map { model.headQKVWeights(layer: l, head: $0) } }
    var deltas = [[Double]](repeating: [], count: receivers.count)
    for (bi, batch) in batches.enumerated() {
        let N = batch.tokenCount
        let clean = LayerInputs(D: D, recordScales: frozenLayerNorm)
        let cleanLD = entailmentLogOdds(
            try model.forward(batch, observer: clean, pool: pool), classes: C, entailment: entailment)
        let scales = frozenLayerNorm ? clean : nil
        let corruptedContexts = try sendersCorrupted(
            model: model, corruption: corruption, batch: bi, senders: senderSet, tokens: N, pool: pool)
        // Run P: senders corrupted, the others at their clean context (or recomputed without `freeze`).
        let patched = LayerInputs(D: D, frozenScales: scales) { l, ctx, tokens in
            for h in 0..<H {
                let source = senderSet.contains(l * H + h) ? corruptedContexts[l] : freeze ? clean.contexts[l] : nil
                guard let source else { continue }
                for t in 0..<tokens { for e in 0..<d { ctx[t * D + h * d + e] = source[t * D + h * d + e] } }
            }
        }
        let pLogits = try model.forward(batch, observer: patched, pool: pool)
        let qkvClean = allocateFloats(N * 3 * d)
        let qkvPatched = allocateFloats(N * 3 * d)
        let qkvMixed = allocateFloats(N * 3 * d)
        let ctxB = allocateFloats(N * d)
        defer {
            qkvClean.deallocate()
            qkvPatched.deallocate()
            qkvMixed.deallocate()
            ctxB.deallocate()
        }
        var projected: (layer: Int, head: Int)? = nil  // the head whose clean and patched q/k/v the buffers hold
        for (r, receiver) in receivers.enumerated() {
            guard case .head(let j, let b, let input) = receiver else {
                deltas[r] += zip(entailmentLogOdds(pLogits, classes: C, entailment: entailment), cleanLD).map {
                    $0 - $1
                }
                continue
            }
            // B's q/k/v from the clean x_j and from x_j^P, once per head (its three receivers share them).
            if projected?.layer != j || projected?.head != b {
                clean.inputs[j].withUnsafeBufferPointer {
                    model.headForward(
                        $0.baseAddress!, weights: headWeights[j][b], batch: batch, qkv: qkvClean, context: nil,
                        pool: pool)
                }
                patched.inputs[j].withUnsafeBufferPointer {
                    model.headForward(
                        $0.baseAddress!, weights: headWeights[j][b], batch: batch, qkv: qkvPatched, context: nil,
                        pool: pool)
                }
                projected = (j, b)
            }
            let logits = try receiverLogits(
                model: model, batch: batch, layer: j, head: b, part: input == "q" ? 0 : input == "k" ? 1 : 2,
                clean: (qkvClean, clean.inputs[j]), patched: qkvPatched, scratch: (qkvMixed, ctxB), scales: scales,
                pool: pool)
            deltas[r] += zip(entailmentLogOdds(logits, classes: C, entailment: entailment), cleanLD).map { $0 - $1 }
        }
    }
    return PatchEffects(receivers: receivers, deltas: deltas)
}

/// The logits with receiver head `b` of layer `j` reading part `part` (0 q, 1 k, 2 v) of its input from run P and
/// the other two from the clean run: B's context from the mixed q/k/v, then the clean run from layer j on with
/// only that context changed.
func receiverLogits(
    model: BertModel, batch: TokenBatch, layer j: Int, head b: Int, part: Int,
    clean: (qkv: UnsafeMutablePointer<Float>, input: [Float]), patched qkvPatched: UnsafeMutablePointer<Float>,
    scratch: (qkv: UnsafeMutablePointer<Float>, ctx: UnsafeMutablePointer<Float>), scales: LayerInputs?,
    pool: ThreadPool
) throws -> [Float] {
    let (N, d, D) = (batch.tokenCount, model.headDim, model.hidden)
    let (qkvMixed, ctxB) = scratch
    qkvMixed.update(from: clean.qkv, count: N * 3 * d)
    for t in 0..<N {
        (qkvMixed + t * 3 * d + part * d).update(from: qkvPatched + t * 3 * d + part * d, count: d)
    }
    model.headContext(qkv: qkvMixed, batch: batch, into: ctxB, pool: pool)
    let replace = LayerInputs(D: D, frozenScales: scales) { l, ctx, tokens in
        guard l == j else { return }
        for t in 0..<tokens { (ctx + t * D + b * d).update(from: ctxB + t * d, count: d) }
    }
    let x = allocateFloats(N * D)
    defer { x.deallocate() }
    clean.input.withUnsafeBufferPointer { x.update(from: $0.baseAddress!, count: N * D) }
    try model.runLayers(x, batch: batch, range: j..<model.layerCount, observer: replace, pool: pool)
    return try model.logits(fromHidden: x, batch: batch, pool: pool)
}

/// The senders' corrupted contexts [L][N·D] for batch `bi` (only the sender heads' columns are read).
func sendersCorrupted(
    model: BertModel, corruption: PatchCorruption, batch bi: Int, senders: Set<Int>, tokens N: Int, pool: ThreadPool
) throws -> [[Float]] {
    let (L, H, d, D) = (model.layerCount, model.headCount, model.headDim, model.hidden)
    switch corruption {
    case .mean(let activations):
        return (0..<L).map { l in
            var c = [Float](repeating: 0, count: N * D)
            c.withUnsafeMutableBufferPointer { ctx in
                for h in 0..<H where senders.contains(l * H + h) {
                    Ablation.mean(activations).ablateHead(
                        ctx.baseAddress!, rows: N, layer: l, head: h, heads: H, headDim: d)
                }
            }
            return c
        }
    case .paired(let corrupted):
        let run = LayerInputs(D: D)
        _ = try model.forward(corrupted[bi], observer: run, pool: pool)
        return run.contexts
    }
}

/// Random sender sets like `senders`: as many heads in each layer, drawn without replacement (seeded).
public func matchedRandomSenders(_ senders: [(layer: Int, head: Int)], heads H: Int, count: Int, seed: UInt64) -> [[(
    layer: Int, head: Int
)]] {
    var rng = SplitMix64(seed: seed)
    let perLayer = Dictionary(grouping: senders, by: \.layer).mapValues(\.count)
    return (0..<count).map { _ in
        perLayer.keys.sorted().flatMap { l -> [(layer: Int, head: Int)] in
            var hs = Array(0..<H)
            rng.shuffle(&hs)
            return hs.prefix(perLayer[l]!).map { (layer: l, head: $0) }
        }
    }
}
