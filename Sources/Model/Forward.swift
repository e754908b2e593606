// The BERT forward pass, reading like the paper's model:
//
//   x   = LayerNorm(word[ids] + token_type[tt] + position[0..<T])
//   per layer l (with an ExecutionPlan deciding which heads and MLPs exist):
//     qkv = x · W_qkvᵀ + b                       [N, 3·H·d]  (kept heads only)
//     ctx = softmax(Q Kᵀ/√d) V per (sequence, head)   [N, H·d]
//           (soft masks: ctx_h ← (ctx_h − avg_h)·z_h + avg_h, or ctx_h·z_h for zero ablation)
//     a   = LayerNorm(ctx · W_Oᵀ + b_O + x)       (a plan folds pruned heads' W_O·avg_h into b_O)
//     m   = gelu(a · W_iᵀ + b_i) · W_2ᵀ + b_2     (the "MLP output"; soft mask as for heads)
//     x   = LayerNorm(m + a)
//   pooled = tanh(x[CLS] · W_pᵀ + b_p);  logits = pooled · W_cᵀ + b_c
//
// Activations are [tokens, features] with the sequences of a batch concatenated (TokenBatch.offsets),
// so GEMMs never multiply padding and attention never sees a padded key.
import Checkpoint
import Foundation
import Kernels
import Tokenizer

/// Sequences of a batch, concatenated. Sequence s owns tokens offsets[s] ..< offsets[s+1].
public struct TokenBatch: Sendable {
    public var inputIds: [Int32] = []
    public var tokenTypeIds: [Int32] = []
    public var offsets: [Int] = [0]

    public init() {}

    public init(_ encodings: [Encoding]) {
        for e in encodings { append(e) }
    }

    public mutating func append(_ e: Encoding) {
        inputIds += e.inputIds
        tokenTypeIds += e.tokenTypeIds
        offsets.append(inputIds.count)
    }

    public var count: Int { offsets.count - 1 }
    public var tokenCount: Int { inputIds.count }
    public func length(_ s: Int) -> Int { offsets[s + 1] - offsets[s] }

    /// Rows whose embedding (token id, position in the sequence, token type) repeats an earlier row's:
    /// `unique` holds the first row of each distinct triple, in order, and `source[r]` the index in
    /// `unique` of row r's triple. Such rows enter layer 0 identical, so their Q/K/V are identical too.
    /// (In a length-sorted batch of 32 HANS pairs only ~25% of the rows are distinct: the same templates'
    /// words at the same positions.)
    public func distinctEmbeddingRows() -> (unique: [Int], source: [Int32]) {
        struct Key: Hashable { let id: Int32, position: Int32, type: Int32 }
        var first = [Key: Int32](minimumCapacity: tokenCount)
        var unique: [Int] = []
        var source = [Int32](repeating: 0, count: tokenCount)
        for s in 0..<count {
            for r in offsets[s]..<offsets[s + 1] {
                let key = Key(id: inputIds[r], position: Int32(r - offsets[s]), type: tokenTypeIds[r])
                if let u = first[key] {
                    source[r] = u
                } else {
                    source[r] = Int32(unique.count)
                    first[key] = Int32(unique.count)
                    unique.append(r)
                }
            }
        }
        return (unique, source)
    }
}

/// Sees intermediate activations during a forward pass (hidden states, mean activations, circuits).
/// Pointers are valid only during the call. Rows are tokens of the batch, concatenated.
public protocol ForwardObserver: AnyObject {
    /// Embedding output after LayerNorm, [N, D].
    func embeddings(_ x: UnsafePointer<Float>, tokens: Int)
    /// Per-head attention context before any mask, [N, H·d] (only with every head present).
    func attentionContext(layer: Int, _ ctx: UnsafePointer<Float>, tokens: Int)
    /// MLP output m (second dense + bias) before mask and residual, [N, D].
    func mlpOutput(layer: Int, _ m: UnsafePointer<Float>, tokens: Int)
    /// Layer output after the final LayerNorm, [N, D].
    func layerOutput(layer: Int, _ x: UnsafePointer<Float>, tokens: Int)
    /// Pooler output, [B, D].
    func pooled(_ p: UnsafePointer<Float>, sequences: Int)
    /// May rewrite the per-head context [N, H·d] before masks and W_O (only with every head present):
    /// interventions such as path patching (Circuits/PathPatching.swift).
    func editContext(layer: Int, _ ctx: UnsafeMutablePointer<Float>, tokens: Int)
    /// What layer `layer`'s LayerNorm `site` (0: attention.output.LayerNorm, 1: output.LayerNorm) does with its
    /// per-token scales 1/σ [N]: record them, or use the given ones (path patching with frozen LayerNorms).
    func layerNormScales(layer: Int, site: Int, tokens: Int) -> LayerNormScales?
}

extension ForwardObserver {
    public func embeddings(_ x: UnsafePointer<Float>, tokens: Int) {}
    public func attentionContext(layer: Int, _ ctx: UnsafePointer<Float>, tokens: Int) {}
    public func mlpOutput(layer: Int, _ m: UnsafePointer<Float>, tokens: Int) {}
    public func layerOutput(layer: Int, _ x: UnsafePointer<Float>, tokens: Int) {}
    public func pooled(_ p: UnsafePointer<Float>, sequences: Int) {}
    public func editContext(layer: Int, _ ctx: UnsafeMutablePointer<Float>, tokens: Int) {}
    public func layerNormScales(layer: Int, site: Int, tokens: Int) -> LayerNormScales? { nil }
}

/// Continuous mask values, one per head [L][H] and per MLP [L], 1 = kept, 0 = pruned.
public struct MaskValues: Equatable, Sendable {
    public var heads: [[Float]]
    public var mlps: [Float]

    public init(heads: [[Float]], mlps: [Float]) {
        self.heads = heads
        self.mlps = mlps
    }

    public static func ones(layers: Int, heads: Int) -> MaskValues {
        MaskValues(
            heads: Array(repeating: Array(repeating: 1, count: heads), count: layers),
            mlps: Array(repeating: 1, count: layers))
    }

    public var isBinary: Bool { (heads.joined() + mlps).allSatisfy { $0 == 0 || $0 == 1 } }
    public var unitCount: Int { heads.reduce(0) { $0 + $1.count } + mlps.count }
    public var keptCount: Float { heads.joined().reduce(0, +) + mlps.reduce(0, +) }
}

/// Mean activations for mean ablation: avg_head [L, H, d] and avg_mlp [L, D], flattened row-major.
public struct MeanActivations: Sendable {
    public var avgHead: [Float]
    public var avgMLP: [Float]
    public var fingerprint: String?

    public init(avgHead: [Float], avgMLP: [Float], fingerprint: String? = nil) {
        self.avgHead = avgHead
        self.avgMLP = avgMLP
        self.fingerprint = fingerprint
    }
}

/// What replaces a pruned unit's output.
public enum Ablation: Sendable {
    case mean(MeanActivations)
    case zero
}

/// HCORE_ALL_ROWS=1 computes every row of the last layer (benchmarks use it to compare like with like).
public let defaultCLSOnlyLastLayer = !Settings.allRows

extension BertModel {
    /// Checks ids, token types and lengths against the model before anything runs.
    public func validate(_ batch: TokenBatch) throws {
        for s in 0..<batch.count {
            let n = batch.length(s)
            if n < 1 { throw ModelError.badInput("sequence \(s) is empty") }
            if n > config.maxPositionEmbeddings {
                throw ModelError.badInput(
                    "sequence \(s) has \(n) tokens but the model has \(config.maxPositionEmbeddings) positions; lower --max-length"
                )
            }
        }
        for (i, id) in batch.inputIds.enumerated() where id < 0 || Int(id) >= config.vocabSize {
            throw ModelError.badInput("token \(i) has id \(id), outside the vocabulary of \(config.vocabSize)")
        }
        for (i, t) in batch.tokenTypeIds.enumerated() where t < 0 || Int(t) >= config.typeVocabSize {
            throw ModelError.badInput("token \(i) has token type \(t); the model has \(config.typeVocabSize)")
        }
    }

    /// Logits [B, C] for a batch. `plan` (default: the whole model) decides which units exist;
    /// `soft` applies continuous masks on top of the full model (the general path).
    /// The last layer runs for the [CLS] rows only unless an observer is given or `clsOnlyLastLayer` is
    /// false (see `runLayers`); the logits are the same either way, to rounding.
    public func forward(
        _ batch: TokenBatch, plan: ExecutionPlan? = nil,
        soft: (masks: MaskValues, ablation: Ablation)? = nil,
        observer: ForwardObserver? = nil, clsOnlyLastLayer: Bool = defaultCLSOnlyLastLayer,
        pool: ThreadPool = .shared
    ) throws -> [Float] {
        guard classifier != nil else { throw ModelError.noClassifier(path: folder) }
        try validate(batch)
        let arena = takeArena()
        defer { returnArena(arena) }
        let x = arena.take(batch.tokenCount * hidden)  // [N, D]
        StageTimer.shared.measure("embeddings") { embed(batch, into: x, pool: pool) }
        observer?.embeddings(x, tokens: batch.tokenCount)
        try runLayers(
            x, batch: batch, range: 0..<layerCount, plan: plan, soft: soft, observer: observer,
            clsOnlyLastLayer: observer == nil && clsOnlyLastLayer, xHoldsEmbeddings: true, pool: pool)
        return try logits(fromHidden: x, batch: batch, observer: observer, pool: pool)
    }

    /// Pooler and classifier on final hidden states [N, D].
    public func logits(
        fromHidden x: UnsafePointer<Float>, batch: TokenBatch, observer: ForwardObserver? = nil,
        pool: ThreadPool = .shared
    ) throws -> [Float] {
        guard let classifier else { throw ModelError.noClassifier(path: folder) }
        return classify(x, batch: batch, classifier: classifier, observer: observer, pool: pool)
    }

    /// Runs embeddings and every layer; returns the final hidden states [N, D] (caller deallocates).
    public func encode(
        _ batch: TokenBatch, plan: ExecutionPlan? = nil,
        soft: (masks: MaskValues, ablation: Ablation)? = nil,
        observer: ForwardObserver? = nil, pool: ThreadPool = .shared
    ) throws -> UnsafeMutablePointer<Float> {
        let x = try embeddings(batch, pool: pool)
        observer?.embeddings(x, tokens: batch.tokenCount)
        do {
            try runLayers(
                x, batch: batch, range: 0..<layerCount, plan: plan, soft: soft, observer: observer,
                xHoldsEmbeddings: true, pool: pool)
        } catch {
            x.deallocate()
            throw error
        }
        return x
    }

    /// The embedding output [N, D] of a validated batch (caller deallocates).
    public func embeddings(_ batch: TokenBatch, pool: ThreadPool = .shared) throws -> UnsafeMutablePointer<Float> {
        let x = allocateFloats(batch.tokenCount * hidden)
        do { try embeddings(batch, into: x, pool: pool) } catch {
            x.deallocate()
            throw error
        }
        return x
    }

    /// Writes the embedding output of a validated batch into x [N, D].
    public func embeddings(_ batch: TokenBatch, into x: UnsafeMutablePointer<Float>, pool: ThreadPool = .shared) throws
    {
        try validate(batch)
        StageTimer.shared.measure("embeddings") { embed(batch, into: x, pool: pool) }
    }

    /// Runs layers `range` on hidden states `x` [N, D] in place; `afterLayer(l, x)` sees each layer's
    /// output (prefix sharing keeps copies of them).
    ///
    /// `clsOnlyLastLayer`: the classifier reads only each sequence's first ([CLS]) row of the last layer's
    /// output, so that layer runs its query, attention, output projection, LayerNorms and MLP for the [CLS]
    /// rows only, and forms no keys or values: `firstQueryAttention` scores every token's input row against
    /// W_Kᵀq and applies W_V once to the probability-weighted sum of those rows. ~99% of the last layer's
    /// work saved (bert-base at T = 128); the logits agree with the every-row path to rounding (~5e-7,
    /// tested), not bit for bit. The other rows of `x` then hold the last layer's *input*; callers that read them
    /// (observers, hidden-state dumps) must pass false.
    ///
    /// `xHoldsEmbeddings`: x is the embedding output of `batch` (range starts at 0), so rows with the same
    /// token, position and type are equal and layer 0 computes their Q/K/V once (`distinctEmbeddingRows`).
    public func runLayers(
        _ x: UnsafeMutablePointer<Float>, batch: TokenBatch, range: Range<Int>, plan: ExecutionPlan? = nil,
        soft: (masks: MaskValues, ablation: Ablation)? = nil, observer: ForwardObserver? = nil,
        clsOnlyLastLayer: Bool = false, xHoldsEmbeddings: Bool = false,
        pool: ThreadPool = .shared, afterLayer: ((Int, UnsafePointer<Float>) -> Void)? = nil
    ) throws {
        if let soft { try checkMasks(soft.masks, soft.ablation) }
        precondition(!(clsOnlyLastLayer && observer != nil), "observers need every row of the last layer")
        let plan = plan ?? fullPlan
        let N = batch.tokenCount
        let B = batch.count
        let D = hidden
        let arena = takeArena()
        defer { returnArena(arena) }
        let run = LayerRun(
            model: self, batch: batch, arena: arena,
            soft: soft.map { SoftMasks(masks: $0.masks, ablation: $0.ablation) },
            observer: observer, pool: pool)
        for l in range {
            // Rows this layer computes after attention: all N, or the B [CLS] rows gathered into xCLS.
            let clsOnly = clsOnlyLastLayer && l == layerCount - 1
            let xIn = clsOnly ? run.xCLS : x
            if clsOnly { gatherCLS(x, into: run.xCLS, offsets: batch.offsets, width: D) }
            run.attentionBlock(
                layer: l, plan: plan.layers[l], x: x, rows: clsOnly ? B : N, clsOnly: clsOnly,
                sharedEmbeddingRows: l == 0 && xHoldsEmbeddings)
            run.feedForwardBlock(layer: l, plan: plan.layers[l], into: xIn, rows: clsOnly ? B : N)
            if clsOnly { scatterCLS(run.xCLS, into: x, offsets: batch.offsets, width: D) }
            observer?.layerOutput(layer: l, x, tokens: N)
            afterLayer?(l, x)
        }
    }

    /// x[t] = LayerNorm(word[id] + token_type[tt] + position[p]) (Blocks/EmbeddingsBlock.swift).
    func embed(_ batch: TokenBatch, into x: UnsafeMutablePointer<Float>, pool: ThreadPool) {
        wordEmbeddings.withUnsafeBufferPointer { word in
            tokenTypeEmbeddings.withUnsafeBufferPointer { type in
                positionEmbeddings.withUnsafeBufferPointer { pos in
                    let tables = EmbeddingTables(
                        word: word.baseAddress!, tokenType: type.baseAddress!, position: pos.baseAddress!)
                    embeddingSum(batch, tables, hidden: hidden, into: x, pool: pool)
                }
            }
        }
        layerNorm(
            x, x, rows: batch.tokenCount, count: hidden, gamma: embeddingsLayerNorm.gamma,
            beta: embeddingsLayerNorm.beta,
            eps: config.layerNormEps, pool: pool)
    }

    /// pooled = tanh(W_p · x[CLS] + b_p); logits = W_c · pooled + b_c (Blocks/ClassifierHeadBlock.swift).
    func classify(
        _ x: UnsafePointer<Float>, batch: TokenBatch, classifier: PackedLinear,
        observer: ForwardObserver?, pool: ThreadPool
    ) -> [Float] {
        let arena = takeArena()
        defer { returnArena(arena) }
        let cache = HeadCache(arena: arena, sequences: batch.count, hidden: hidden)
        let see: ((UnsafePointer<Float>) -> Void)? = observer.map { o in { o.pooled($0, sequences: batch.count) } }
        return classifierHeadForward(
            x, offsets: batch.offsets, HeadParameters(pooler: pooler, classifier: classifier), cache,
            hidden: hidden, seePooled: see, pool: pool)
    }

    public func checkMasks(_ masks: MaskValues, _ ablation: Ablation) throws {
        guard masks.heads.count == layerCount, masks.heads.allSatisfy({ $0.count == headCount }),
            masks.mlps.count == layerCount
        else {
            throw ModelError.mismatch(
                "mask shape: expected heads [\(layerCount)][\(headCount)] and mlps [\(layerCount)], got heads \(masks.heads.map(\.count)) and mlps [\(masks.mlps.count)]"
            )
        }
        for v in masks.heads.joined() + masks.mlps where !(v >= 0 && v <= 1) {
            throw ModelError.mismatch("mask value \(v) is outside [0, 1]")
        }
        if case .mean(let avg) = ablation {
            try checkActivations(avg)
        }
    }

    public func checkActivations(_ avg: MeanActivations) throws {
        guard avg.avgHead.count == layerCount * headCount * headDim, avg.avgMLP.count == layerCount * hidden else {
            throw ModelError.mismatch(
                "mean activations have avg_head of \(avg.avgHead.count) values and avg_mlp of \(avg.avgMLP.count); this model needs [\(layerCount), \(headCount), \(headDim)] and [\(layerCount), \(hidden)]"
            )
        }
        if let f = avg.fingerprint, f != fingerprint {
            throw ModelError.mismatch(
                "mean activations were computed for model \(f), not this one (\(fingerprint)); run `hcore activations` for this model"
            )
        }
    }
}

/// The buffers and settings of one `runLayers` call, and the two halves of an encoder layer over them:
/// self-attention (with its fast variants) and the feed-forward block, each ending in its LayerNorm.
/// The variants are the block they speed up, with the same result: `firstQueryAttention` for the [CLS]
/// rows of the last layer (naive twin: Kernels' attention over every row, tested to rounding) and layer 0's
/// distinct embedding rows (bit-identical).
struct LayerRun {
    let model: BertModel
    let batch: TokenBatch
    let arena: ScratchArena
    let soft: SoftMasks?
    let observer: ForwardObserver?
    let pool: ThreadPool
    let qkv, ctx, a, inter, m, ctxCLS, xCLS: UnsafeMutablePointer<Float>
    let timer = StageTimer.shared

    init(
        model: BertModel, batch: TokenBatch, arena: ScratchArena, soft: SoftMasks?, observer: ForwardObserver?,
        pool: ThreadPool
    ) {
        (self.model, self.batch, self.arena, self.soft, self.observer, self.pool) = (
            model, batch, arena, soft, observer, pool
        )
        let N = batch.tokenCount
        let B = batch.count
        let D = model.hidden
        let I = model.config.intermediateSize
        qkv = arena.take(N * 3 * D)  // [N, 3D] (a plan's kept heads use the first columns)
        ctx = arena.take(N * D)  // [N, D] attention context, head-major
        a = arena.take(N * D)  // [N, D] attention block output (LayerNorm 1)
        inter = arena.take(N * I)  // [N, I] GELU(intermediate)
        m = arena.take(N * D)  // [N, D] MLP output + residual
        ctxCLS = arena.take(B * D)  // [B, D] the [CLS] rows of ctx (last layer, clsOnlyLastLayer)
        xCLS = arena.take(B * D)  // [B, D] the [CLS] rows of x
    }

    /// a [R, D] ← LayerNorm1(x + attention over the kept heads), R = N or the B [CLS] rows (input xCLS).
    func attentionBlock(
        layer l: Int, plan lp: LayerPlan, x: UnsafeMutablePointer<Float>, rows R: Int, clsOnly: Bool,
        sharedEmbeddingRows: Bool
    ) {
        let layer = model.layers[l]
        let D = model.hidden
        let N = batch.tokenCount
        let eps = model.config.layerNormEps
        let xIn = clsOnly ? xCLS : x
        let kept = lp.keptHeads.count
        guard kept > 0, let wqkv = lp.qkv, let wo = lp.attentionOutput else {
            // No head kept: the block's output is x + a constant row (pruned heads' W_O·avg + b_O).
            let constant = lp.attentionConstant ?? [Float](repeating: 0, count: D)
            timer.measure("layernorm") {
                layerNorm(
                    xIn, a, rows: R, count: D, adding: constant, gamma: layer.attentionLayerNorm.gamma,
                    beta: layer.attentionLayerNorm.beta, eps: eps,
                    scales: observer?.layerNormScales(layer: l, site: 0, tokens: R), pool: pool)
            }
            return
        }
        let width = kept * model.headDim
        if clsOnly, let weights = lp.firstQueryWeights(features: D) {
            firstQueryContext(x: x, weights: weights, heads: kept, width: width)
        } else if sharedEmbeddingRows, case (let unique, let source) = batch.distinctEmbeddingRows(),
            unique.count * 10 < N * 9
        {
            distinctRowsQKV(x: x, weight: wqkv, unique: unique, source: source, width: width)
        } else {
            timer.measure("qkv gemm") {
                gemm(x, rows: N, lda: D, wqkv, out: qkv, ldc: 3 * width, epilogue: .bias, pool: pool)
            }
        }
        if !clsOnly {
            timer.measure("attention") {
                attention(
                    qkv: qkv, ldqkv: 3 * width, heads: kept, headDim: model.headDim, offsets: batch.offsets, ctx: ctx,
                    ldctx: width, pool: pool)
            }
        }
        let ctxIn = clsOnly ? ctxCLS : ctx
        if kept == model.headCount {
            observer?.attentionContext(layer: l, ctx, tokens: N)
            observer?.editContext(layer: l, ctx, tokens: N)
        }
        soft?.applyHeads(ctxIn, rows: R, layer: l, headDim: model.headDim)
        timer.measure("out gemm") {
            gemm(ctxIn, rows: R, lda: width, wo, out: a, ldc: D, epilogue: .biasResidual(xIn, ld: D), pool: pool)
        }
        timer.measure("layernorm") {
            layerNorm(
                a, a, rows: R, count: D, gamma: layer.attentionLayerNorm.gamma, beta: layer.attentionLayerNorm.beta,
                eps: eps,
                scales: observer?.layerNormScales(layer: l, site: 0, tokens: R), pool: pool)
        }
    }

    /// The [CLS] rows' context without forming keys or values: queries for the [CLS] rows only, then
    /// their attention over every token's input row (Kernels/FirstQueryAttention.swift), into ctxCLS.
    func firstQueryContext(
        x: UnsafeMutablePointer<Float>, weights: LayerPlan.FirstQueryWeights, heads kept: Int, width: Int
    ) {
        let D = model.hidden
        let B = batch.count
        let headDim = model.headDim
        let qCLS = m  // [B, width] scratch: m is free until the MLP
        timer.measure("qkv gemm") {
            gemm(xCLS, rows: B, lda: D, weights.query, out: qCLS, ldc: width, epilogue: .bias, pool: pool)
        }
        timer.measure("attention") {
            weights.key.withUnsafeBufferPointer { wk in
                weights.valueT.withUnsafeBufferPointer { wvT in
                    let run = { (bv: UnsafePointer<Float>?) in
                        firstQueryAttention(
                            x: x, ldx: D, features: D, offsets: batch.offsets, queries: qCLS, heads: kept,
                            headDim: headDim,
                            keyWeight: wk.baseAddress!, valueWeightT: wvT.baseAddress!, valueBias: bv, ctx: ctxCLS,
                            ldctx: width, pool: pool)
                    }
                    if let bias = weights.valueBias {
                        bias.withUnsafeBufferPointer { run($0.baseAddress!) }
                    } else {
                        run(nil)
                    }
                }
            }
        }
    }

    /// Layer 0 with repeated rows: Q/K/V of each distinct row once, then copied to its repeats —
    /// bit-identical, as every row's product is rounded alike whichever rows share the GEMM call.
    /// (Two more arena buffers, after the fixed ones, so the other buffers keep their order.)
    func distinctRowsQKV(
        x: UnsafeMutablePointer<Float>, weight wqkv: PackedLinear, unique: [Int], source: [Int32], width: Int
    ) {
        let D = model.hidden
        let N = batch.tokenCount
        let U = unique.count
        let ld = 3 * width
        let xu = arena.take(U * D)
        let qkvU = arena.take(U * ld)  // [U, D], [U, 3·width]
        let (qa, ua) = (UInt(bitPattern: qkv), UInt(bitPattern: qkvU))
        timer.measure("qkv gemm") {
            for (i, r) in unique.enumerated() { (xu + i * D).update(from: x + r * D, count: D) }
            gemm(xu, rows: U, lda: D, wqkv, out: qkvU, ldc: ld, epilogue: .bias, pool: pool)
            source.withUnsafeBufferPointer { src in
                let chunk = 64
                pool.parallelFor((N + chunk - 1) / chunk) { c in
                    let out = UnsafeMutablePointer<Float>(bitPattern: qa)!
                    let from = UnsafePointer<Float>(bitPattern: ua)!
                    for r in (c * chunk)..<min(N, (c + 1) * chunk) {
                        (out + r * ld).update(from: from + Int(src[r]) * ld, count: ld)
                    }
                }
            }
        }
    }

    /// out [R, D] ← LayerNorm2(a + MLP(a)); a pruned MLP adds its mean output instead (no product).
    func feedForwardBlock(layer l: Int, plan lp: LayerPlan, into out: UnsafeMutablePointer<Float>, rows R: Int) {
        let layer = model.layers[l]
        let D = model.hidden
        let I = model.config.intermediateSize
        let eps = model.config.layerNormEps
        if let constant = lp.mlpConstant {
            timer.measure("layernorm") {
                layerNorm(
                    a, out, rows: R, count: D, adding: constant, gamma: layer.outputLayerNorm.gamma,
                    beta: layer.outputLayerNorm.beta, eps: eps,
                    scales: observer?.layerNormScales(layer: l, site: 1, tokens: R), pool: pool)
            }
            return
        }
        timer.measure("ffn1+gelu") {
            gemm(a, rows: R, lda: D, layer.intermediate, out: inter, ldc: I, epilogue: .biasGELU, pool: pool)
        }
        if soft != nil || observer != nil {
            gemm(inter, rows: R, lda: I, layer.output, out: m, ldc: D, epilogue: .bias, pool: pool)
            observer?.mlpOutput(layer: l, m, tokens: batch.tokenCount)
            soft?.applyMLP(m, rows: R, layer: l, hidden: D)
            addVectors(m, a, count: R * D)
        } else {
            timer.measure("ffn2 gemm") {
                gemm(
                    inter, rows: R, lda: I, layer.output, out: m, ldc: D, epilogue: .biasResidual(a, ld: D), pool: pool)
            }
        }
        timer.measure("layernorm") {
            layerNorm(
                m, out, rows: R, count: D, gamma: layer.outputLayerNorm.gamma, beta: layer.outputLayerNorm.beta,
                eps: eps,
                scales: observer?.layerNormScales(layer: l, site: 1, tokens: R), pool: pool)
        }
    }
}
