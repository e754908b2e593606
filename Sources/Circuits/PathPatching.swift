// Path patching (Wang et al. 2022; Goldowsky-Dill et al. 2023): how much of the senders' effect on the
// prediction flows through one receiver.
//
//   senders    heads and MLPs (the core by default); corrupted = each sender's output replaced by its mean
//              activation (the ablation the paper prunes with), or by its output at the same position on a
//              corrupted input of the same length (`PatchCorruption.paired`)
//   run P      clean input, senders corrupted, every other head frozen at its clean context (`freeze`;
//              MLPs that are not senders recompute; LayerNorms keep the clean run's per-token 1/σ and only
//              centre, by default, so every path adds up linearly through them — or recompute their scales):
//              each layer's input x_j^P then differs from the clean x_j only by what the senders write,
//              through the residual stream and the MLPs
//   receivers  head B of a later layer j reading through its query, key or value input: B's q (or k, or v)
//              computed from x_j^P, the other two from x_j; B's context from those; then the clean forward
//              from layer j with only B's context changed, everything downstream recomputed. Or the logits:
//              run P's own output (the senders' effect reaching the output through no later head)
//   measure    LD = z_entailment − log Σ_{c ≠ entailment} exp z_c (entailment vs non-entailment log-odds);
//              Δ = LD(patched) − LD(clean), per example
//   total      the senders corrupted and nothing else frozen: their whole effect, LD(corrupted) − LD(clean),
//              with run P's LayerNorm rule (the denominator of each receiver's fraction) and with LayerNorms
//              recomputed (the plain clean-vs-corrupted effect)
// Everything runs on the model or on a subnetwork of it (`subnetwork`: its masks and ablation), whose
// pruned units stay at their ablated value throughout. The receivers' runs use run P's LayerNorm rule.
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

/// The units whose output is corrupted.
public struct PatchSenders: Sendable {
    public var heads: [(layer: Int, head: Int)]
    public var mlps: [Int]
    public init(heads: [(layer: Int, head: Int)], mlps: [Int] = []) { (self.heads, self.mlps) = (heads, mlps) }

    public var isEmpty: Bool { heads.isEmpty && mlps.isEmpty }
    /// The earliest layer a sender sits in (nil: no sender).
    public var firstLayer: Int? { (heads.map(\.layer) + mlps).min() }
    public var names: [String] {
        heads.map { PrunableUnit.head($0.layer, $0.head).description } + mlps.map { PrunableUnit.mlp($0).description }
    }
}

/// Δ of the entailment log-odds per receiver and example, and the senders' total effect per example.
public struct PatchEffects: Sendable {
    public var receivers: [PatchReceiver]
    /// [receiver][example], in the order of the batches' sequences.
    public var deltas: [[Double]]
    /// Per example, when measured: the senders corrupted with nothing else frozen, LayerNorms as in run P, and
    /// with LayerNorms recomputed.
    public var total: [Double] = []
    public var totalRecomputed: [Double] = []
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

/// The receivers every sender set is measured on: each head of a layer after the senders' first layer (sender
/// heads excluded) through q, k and v, then the logits.
public func patchReceivers(senders: PatchSenders, layers L: Int, heads H: Int) -> [PatchReceiver] {
    let first = senders.firstLayer ?? L
    let senderSet = Set(senders.heads.map { $0.layer * H + $0.head })
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
    /// Its mean activation (one row per head or MLP, every position).
    case mean(MeanActivations)
    /// Its output on a corrupted input: one batch per clean batch, with the same sequence lengths.
    case paired([TokenBatch])
}

/// How run P and the receivers' runs treat what is not a sender.
public struct PatchSettings: Sendable {
    /// Other heads at their clean context (path patching); off: recomputed (the senders' plain ablation).
    public var freeze = true
    /// LayerNorms keep the clean run's 1/σ per token (the default); off: they recompute it.
    public var frozenLayerNorm = true
    /// A subnetwork's masks and ablation (nil: the full model).
    public var subnetwork: (masks: MaskValues, ablation: Ablation)?
    /// Also measure the senders' total effect.
    public var total = true
    public init() {}
}

/// Path patching of `senders` to every receiver in `receivers` (see the file comment).
public func pathPatch(
    model: BertModel, batches: [TokenBatch], senders: PatchSenders, receivers: [PatchReceiver],
    corruption: PatchCorruption, entailment: Int, settings: PatchSettings = PatchSettings(),
    pool: ThreadPool = .shared
) throws -> PatchEffects {
    try checkCorruption(model: model, corruption, batches: batches)
    let run = PatchRun(model: model, senders: senders, settings: settings, entailment: entailment, pool: pool)
    var effects = PatchEffects(receivers: receivers, deltas: [[Double]](repeating: [], count: receivers.count))
    for (bi, batch) in batches.enumerated() {
        let corrupted = try sendersCorrupted(
            model: model, corruption: corruption, batch: bi, senders: senders, tokens: batch.tokenCount,
            subnetwork: settings.subnetwork, pool: pool)
        // The clean run, once for the receivers and both totals: its inputs, contexts, LayerNorm scales and LD.
        let clean = LayerInputs(D: model.hidden, recordScales: true)
        let cleanLD = run.ld(try model.forward(batch, soft: settings.subnetwork, observer: clean, pool: pool))
        let batchDeltas = try run.deltas(
            batch, clean: clean, cleanLD: cleanLD, corrupted: corrupted, receivers: receivers)
        for r in receivers.indices { effects.deltas[r] += batchDeltas[r] }
        if settings.total {
            effects.total += try run.total(
                batch, cleanScales: settings.frozenLayerNorm ? clean : nil, cleanLD: cleanLD, corrupted: corrupted)
            effects.totalRecomputed += try run.total(batch, cleanScales: nil, cleanLD: cleanLD, corrupted: corrupted)
        }
    }
    return effects
}

func checkCorruption(model: BertModel, _ corruption: PatchCorruption, batches: [TokenBatch]) throws {
    switch corruption {
    case .mean(let activations): try model.checkActivations(activations)
    case .paired(let corrupted):
        guard corrupted.count == batches.count, zip(corrupted, batches).allSatisfy({ $0.offsets == $1.offsets }) else {
            throw ModelError.badInput(
                "paired corruption needs one corrupted sequence of the same length per clean sequence")
        }
    }
}

/// The senders' corrupted outputs for one batch: head contexts [L][N·D] (only the sender heads' columns are
/// read) and MLP outputs by layer [N·D].
struct CorruptedOutputs {
    var contexts: [[Float]]
    var mlps: [Int: [Float]]
}

/// One batch's runs: clean, P, the receivers', and the total effect.
struct PatchRun {
    let model: BertModel
    let senders: PatchSenders
    let settings: PatchSettings
    let entailment: Int
    let pool: ThreadPool

    var senderHeads: Set<Int> { Set(senders.heads.map { $0.layer * model.headCount + $0.head }) }

    func ld(_ logits: [Float]) -> [Double] {
        entailmentLogOdds(logits, classes: model.config.numLabels, entailment: entailment)
    }

    /// Δ per receiver and example, from the batch's clean run (`clean` recorded its scales; `cleanLD` its LD).
    func deltas(
        _ batch: TokenBatch, clean: LayerInputs, cleanLD: [Double], corrupted: CorruptedOutputs,
        receivers: [PatchReceiver]
    ) throws -> [[Double]] {
        let (H, d, D) = (model.headCount, model.headDim, model.hidden)
        let soft = settings.subnetwork
        let scales = settings.frozenLayerNorm ? clean : nil
        let heads = senderHeads
        let replaceMLPs: LayerInputs.Edit = { l, m, tokens in
            guard let source = corrupted.mlps[l] else { return }
            m.update(from: source, count: tokens * D)
        }
        // Run P: senders corrupted, the other heads at their clean context (or recomputed without `freeze`).
        let patched = LayerInputs(
            D: D, frozenScales: scales, editMLP: replaceMLPs,
            edit: { l, ctx, tokens in
                for h in 0..<H {
                    let source =
                        heads.contains(l * H + h) ? corrupted.contexts[l] : settings.freeze ? clean.contexts[l] : nil
                    guard let source else { continue }
                    for t in 0..<tokens { for e in 0..<d { ctx[t * D + h * d + e] = source[t * D + h * d + e] } }
                }
            })
        let pLD = ld(try model.forward(batch, soft: soft, observer: patched, pool: pool))
        var out = [[Double]](repeating: [], count: receivers.count)
        var projector = ReceiverProjector(model: model, batch: batch, pool: pool)
        defer { projector.deallocate() }
        for (r, receiver) in receivers.enumerated() {
            guard case .head(let j, let b, let input) = receiver else {
                out[r] = zip(pLD, cleanLD).map { $0 - $1 }
                continue
            }
            projector.project(layer: j, head: b, clean: clean.inputs[j], patched: patched.inputs[j])
            let logits = try projector.receiverLogits(
                part: input == "q" ? 0 : input == "k" ? 1 : 2, cleanInput: clean.inputs[j], scales: scales,
                subnetwork: soft)
            out[r] = zip(ld(logits), cleanLD).map { $0 - $1 }
        }
        return out
    }

    /// The senders' total effect per example: corrupted, nothing else frozen, LayerNorm scales frozen at the
    /// clean run's (`cleanScales`) or recomputed (nil).
    func total(_ batch: TokenBatch, cleanScales: LayerInputs?, cleanLD: [Double], corrupted: CorruptedOutputs) throws
        -> [Double]
    {
        let (H, d, D) = (model.headCount, model.headDim, model.hidden)
        let soft = settings.subnetwork
        let heads = senderHeads
        let whole = LayerInputs(
            D: D, recording: false, frozenScales: cleanScales,
            editMLP: { l, m, tokens in
                if let source = corrupted.mlps[l] { m.update(from: source, count: tokens * D) }
            },
            edit: { l, ctx, tokens in
                for h in 0..<H where heads.contains(l * H + h) {
                    for t in 0..<tokens {
                        for e in 0..<d { ctx[t * D + h * d + e] = corrupted.contexts[l][t * D + h * d + e] }
                    }
                }
            })
        return zip(ld(try model.forward(batch, soft: soft, observer: whole, pool: pool)), cleanLD).map { $0 - $1 }
    }
}

/// A receiver head's q/k/v from the clean and the patched layer input, and the logits with one of the three
/// taken from the patched side.
struct ReceiverProjector {
    let model: BertModel
    let batch: TokenBatch
    let pool: ThreadPool
    let qkvClean, qkvPatched, qkvMixed, ctxB: UnsafeMutablePointer<Float>
    /// The head whose clean and patched q/k/v the buffers hold (its three receivers share them).
    var projected: (layer: Int, head: Int)? = nil

    init(model: BertModel, batch: TokenBatch, pool: ThreadPool) {
        let (N, d) = (batch.tokenCount, model.headDim)
        (self.model, self.batch, self.pool) = (model, batch, pool)
        (qkvClean, qkvPatched, qkvMixed) = (
            allocateFloats(N * 3 * d), allocateFloats(N * 3 * d), allocateFloats(N * 3 * d)
        )
        ctxB = allocateFloats(N * d)
    }
    func deallocate() { for p in [qkvClean, qkvPatched, qkvMixed, ctxB] { p.deallocate() } }

    mutating func project(layer j: Int, head b: Int, clean: [Float], patched: [Float]) {
        if projected?.layer == j && projected?.head == b { return }
        let w = model.headQKVWeights(layer: j, head: b)
        for (input, qkv) in [(clean, qkvClean), (patched, qkvPatched)] {
            input.withUnsafeBufferPointer {
                model.headForward($0.baseAddress!, weights: w, batch: batch, qkv: qkv, context: nil, pool: pool)
            }
        }
        projected = (j, b)
    }

    /// The logits with the projected head reading part `part` (0 q, 1 k, 2 v) of its input from run P and the
    /// other two from the clean run: its context from the mixed q/k/v, then the clean run from its layer on
    /// with only that context changed.
    func receiverLogits(
        part: Int, cleanInput: [Float], scales: LayerInputs?, subnetwork: (masks: MaskValues, ablation: Ablation)?
    ) throws -> [Float] {
        guard let (j, b) = projected else { return [] }
        let (N, d, D) = (batch.tokenCount, model.headDim, model.hidden)
        qkvMixed.update(from: qkvClean, count: N * 3 * d)
        for t in 0..<N {
            (qkvMixed + t * 3 * d + part * d).update(from: qkvPatched + t * 3 * d + part * d, count: d)
        }
        model.headContext(qkv: qkvMixed, batch: batch, into: ctxB, pool: pool)
        // `edit:` spelled out: an unlabelled trailing closure would bind to the first closure parameter, editMLP.
        let replace = LayerInputs(
            D: D, recording: false, frozenScales: scales,
            edit: { l, ctx, tokens in
                guard l == j else { return }
                for t in 0..<tokens { (ctx + t * D + b * d).update(from: ctxB + t * d, count: d) }
            })
        replace.clsRows = Array(batch.offsets.dropLast())
        let x = allocateFloats(N * D)
        defer { x.deallocate() }
        cleanInput.withUnsafeBufferPointer { x.update(from: $0.baseAddress!, count: N * D) }
        // Only the [CLS] rows of the last layer reach the logits: a receiver before it lets that layer form
        // them alone (`.firstQuery`); a receiver in it needs the layer's attention over every row (`.cls`).
        try model.runLayers(
            x, batch: batch, range: j..<model.layerCount, soft: subnetwork, observer: replace,
            lastLayer: j == model.layerCount - 1 ? .cls : .firstQuery, pool: pool)
        return try model.logits(fromHidden: x, batch: batch, pool: pool)
    }
}

/// The senders' corrupted outputs for batch `bi`.
func sendersCorrupted(
    model: BertModel, corruption: PatchCorruption, batch bi: Int, senders: PatchSenders, tokens N: Int,
    subnetwork: (masks: MaskValues, ablation: Ablation)?, pool: ThreadPool
) throws -> CorruptedOutputs {
    let (L, H, d, D) = (model.layerCount, model.headCount, model.headDim, model.hidden)
    switch corruption {
    case .mean(let activations):
        let heads = Set(senders.heads.map { $0.layer * H + $0.head })
        let contexts = (0..<L).map { l in
            var c = [Float](repeating: 0, count: N * D)
            c.withUnsafeMutableBufferPointer { ctx in
                for h in 0..<H where heads.contains(l * H + h) {
                    Ablation.mean(activations).ablateHead(
                        ctx.baseAddress!, rows: N, layer: l, head: h, heads: H, headDim: d)
                }
            }
            return c
        }
        var mlps: [Int: [Float]] = [:]
        for l in senders.mlps {
            let row = Array(activations.avgMLP[(l * D)..<((l + 1) * D)])
            mlps[l] = (0..<N).flatMap { _ in row }
        }
        return CorruptedOutputs(contexts: contexts, mlps: mlps)
    case .paired(let corrupted):
        let run = LayerInputs(D: D)
        _ = try model.forward(corrupted[bi], soft: subnetwork, observer: run, pool: pool)
        return CorruptedOutputs(
            contexts: run.contexts,
            mlps: Dictionary(uniqueKeysWithValues: senders.mlps.map { ($0, run.mlpOutputs[$0]!) }))
    }
}
