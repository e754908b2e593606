// Activation-based reading from the core: which later heads actually use what the core writes.
//
// For a batch, two runs: clean, and with the core heads mean-ablated (Heuristic-Core's ablation). For each
// head B in a layer after the first core layer (core heads themselves excluded), B alone is given the
// ablated run's layer input x′ — every other head, and every later layer, keeps the clean input x. The
// measures are relative Frobenius changes over all tokens:
//   Δq = ‖x′W_Q^B − xW_Q^B‖ / ‖xW_Q^B + b‖ (biases included), Δk, Δv likewise,
//   Δout = ‖ctx_B(x′) − ctx_B(x)‖ / ‖ctx_B(x)‖  (B's attention output with all of Q, K, V from x′).
// So Δ measures what reaches B's input from the core through every route, as consumed by B only. The
// logit change of the full core ablation (mean |Δlogit| and KL(clean ‖ ablated)) is reported alongside.
import Checkpoint
import Foundation
import Kernels
import Model

public struct HeadRead: Sendable {
    public let layer: Int, head: Int
    public let dq: Double, dk: Double, dv: Double, dout: Double
}

public struct ReadsReport: Sendable {
    public let core: [(layer: Int, head: Int)]
    public let reads: [HeadRead]  // sorted by Δout, largest first
    public let meanAbsLogitChange: Double
    public let klCleanToAblated: Double
    public let examples: Int
}

/// Records each layer's input (embeddings for layer 0) and each layer's pre-mask head contexts; `edit`, when
/// given, then rewrites a layer's contexts (path patching's interventions). With `recordScales` it also keeps
/// every LayerNorm's per-token scales; with `frozenScales` (a run that recorded them) its LayerNorms use
/// those scales instead of their own.
final class LayerInputs: ForwardObserver {
    var inputs: [[Float]] = []  // [L][N·D]
    var contexts: [[Float]] = []  // [L][N·D]
    let D: Int
    let edit: ((_ layer: Int, _ ctx: UnsafeMutablePointer<Float>, _ tokens: Int) -> Void)?
    let recordScales: Bool
    let frozenScales: LayerInputs?
    private var scales: [Int: UnsafeMutablePointer<Float>] = [:]  // layer·2 + site → [N]
    private var scaleRows: [Int: Int] = [:]

    init(
        D: Int, recordScales: Bool = false, frozenScales: LayerInputs? = nil,
        edit: ((Int, UnsafeMutablePointer<Float>, Int) -> Void)? = nil
    ) {
        (self.D, self.recordScales, self.frozenScales, self.edit) = (D, recordScales, frozenScales, edit)
    }
    deinit { for s in scales.values { s.deallocate() } }
    func embeddings(_ x: UnsafePointer<Float>, tokens: Int) {
        inputs = [Array(UnsafeBufferPointer(start: x, count: tokens * D))]
        contexts = []
    }
    func layerOutput(layer: Int, _ x: UnsafePointer<Float>, tokens: Int) {
        inputs.append(Array(UnsafeBufferPointer(start: x, count: tokens * D)))
    }
    func attentionContext(layer: Int, _ ctx: UnsafePointer<Float>, tokens: Int) {
        contexts.append(Array(UnsafeBufferPointer(start: ctx, count: tokens * D)))
    }
    func editContext(layer: Int, _ ctx: UnsafeMutablePointer<Float>, tokens: Int) { edit?(layer, ctx, tokens) }
    func layerNormScales(layer: Int, site: Int, tokens: Int) -> LayerNormScales? {
        let key = layer * 2 + site
        if let frozen = frozenScales, let p = frozen.scales[key], frozen.scaleRows[key] == tokens { return .fixed(p) }
        guard recordScales else { return nil }
        if scaleRows[key] != tokens {
            scales[key]?.deallocate()
            scales[key] = allocateFloats(tokens)
            scaleRows[key] = tokens
        }
        return .record(scales[key]!)
    }
}

/// The core's heads mean-ablated, everything else kept.
extension ReadsReport {
    /// The document `hcore circuits reads --json` prints.
    public var json: JSONValue {
        .object([
            ("core", .array(core.map { .array([.int($0.layer), .int($0.head)]) })), ("examples", .int(examples)),
            ("mean_abs_logit_change", .float(meanAbsLogitChange)), ("kl_clean_to_ablated", .float(klCleanToAblated)),
            (
                "reads",
                .array(
                    reads.map {
                        .object([
                            ("layer", .int($0.layer)), ("head", .int($0.head)), ("dq", .float($0.dq)),
                            ("dk", .float($0.dk)), ("dv", .float($0.dv)), ("dout", .float($0.dout)),
                        ])
                    })
            ),
        ])
    }
}

public func coreMasks(_ core: [(layer: Int, head: Int)], layers: Int, heads: Int) -> MaskValues {
    var m = MaskValues.ones(layers: layers, heads: heads)
    for (l, h) in core { m.heads[l][h] = 0 }
    return m
}

public func coreReads(
    model: BertModel, batches: [TokenBatch], core: [(layer: Int, head: Int)], activations: MeanActivations,
    pool: ThreadPool = .shared
) throws -> ReadsReport {
    let L = model.layerCount
    let H = model.headCount
    let d = model.headDim
    let D = model.hidden
    let C = model.config.numLabels
    guard !core.isEmpty else { throw ModelError.badInput("the core is empty: nothing to ablate") }
    let firstCoreLayer = core.map(\.layer).min()!
    let coreSet = Set(core.map { $0.layer * H + $0.head })
    let masks = coreMasks(core, layers: L, heads: H)
    let readers = (0..<L).flatMap { l in (0..<H).map { (l, $0) } }.filter {
        $0.0 > firstCoreLayer && !coreSet.contains($0.0 * H + $0.1)
    }
    // Per reader: Σ‖Δ‖² and Σ‖clean‖² for q, k, v, out.
    var sums = [[Double]](repeating: [Double](repeating: 0, count: 8), count: readers.count)
    let headWeights = (0..<L).map { l in (0..<H).map { model.headQKVWeights(layer: l, head: $0) } }
    var absLogit = 0.0
    var kl = 0.0
    var examples = 0
    for batch in batches {
        let N = batch.tokenCount
        let clean = LayerInputs(D: D)
        let ablated = LayerInputs(D: D)
        let cleanLogits = try model.forward(batch, observer: clean, pool: pool)
        let ablatedLogits = try model.forward(batch, soft: (masks, .mean(activations)), observer: ablated, pool: pool)
        for i in cleanLogits.indices { absLogit += Double(abs(cleanLogits[i] - ablatedLogits[i])) / Double(C) }
        // KL(clean ‖ ablated), the pruning objective's loss (Model/Blocks/Losses.swift), summed over the batch.
        let target = (0..<batch.count).flatMap { b in softmaxDouble(Array(cleanLogits[(b * C)..<((b + 1) * C)])) }
        kl += distributionLoss(logits: ablatedLogits, targets: target, classes: C, kl: true).loss * Double(batch.count)
        examples += batch.count
        let qkvClean = allocateFloats(N * 3 * d)
        let qkvAbl = allocateFloats(N * 3 * d)
        let ctxAbl = allocateFloats(N * d)
        defer {
            qkvClean.deallocate()
            qkvAbl.deallocate()
            ctxAbl.deallocate()
        }
        for (r, (l, h)) in readers.enumerated() {
            clean.inputs[l].withUnsafeBufferPointer {
                model.headForward(
                    $0.baseAddress!, weights: headWeights[l][h], batch: batch, qkv: qkvClean, context: nil, pool: pool)
            }
            ablated.inputs[l].withUnsafeBufferPointer {
                model.headForward(
                    $0.baseAddress!, weights: headWeights[l][h], batch: batch, qkv: qkvAbl, context: ctxAbl, pool: pool)
            }
            for t in 0..<N {
                for part in 0..<3 {
                    for e in 0..<d {
                        let c = Double(qkvClean[t * 3 * d + part * d + e])
                        let a = Double(qkvAbl[t * 3 * d + part * d + e])
                        sums[r][2 * part] += (a - c) * (a - c)
                        sums[r][2 * part + 1] += c * c
                    }
                }
                for e in 0..<d {
                    let c = Double(clean.contexts[l][t * D + h * d + e])
                    let a = Double(ctxAbl[t * d + e])
                    sums[r][6] += (a - c) * (a - c)
                    sums[r][7] += c * c
                }
            }
        }
    }
    func rel(_ s: [Double], _ i: Int) -> Double { (s[2 * i] / max(s[2 * i + 1], 1e-300)).squareRoot() }
    let reads = readers.enumerated().map { (r, lh) in
        HeadRead(
            layer: lh.0, head: lh.1, dq: rel(sums[r], 0), dk: rel(sums[r], 1), dv: rel(sums[r], 2),
            dout: rel(sums[r], 3))
    }.sorted { $0.dout > $1.dout }
    return ReadsReport(
        core: core, reads: reads, meanAbsLogitChange: absLogit / Double(max(1, examples)),
        klCleanToAblated: kl / Double(max(1, examples)), examples: examples)
}
