// The one composition of BERT (llm.c's gpt2_forward): embeddings → every encoder layer → classifier head over
// one table of named activations, and its backward from the logits down. Every driver asks it for what it
// needs: inference (logits, hidden states, hooks), mask gradients (pruning, importance), weight gradients
// (fine-tuning), path patching and attention dumps.
//
//   x      = Dropout(LayerNorm(word[ids] + token_type[tt] + position))       [N, D]   (Blocks/Embeddings)
//   x      = layer_l(x)  for l in 0..<L, the plan deciding which units exist  [N, D]   (Blocks/EncoderLayer)
//   logits = classifier(Dropout(tanh(x[CLS] W_pᵀ + b_p)))                      [B, C]   (Blocks/ClassifierHead)
//
// Training mode draws BERT's dropout multipliers from one SplitMix64 stream in a fixed order: embeddings,
// every layer's attention output, every layer's MLP output, the pooled output, then every layer's attention
// probabilities.
import Checkpoint
import Kernels

/// BERT's parameters as the composition reads them, in the checkpoint's module tree: an inference model's
/// packed weights, or a training model's, packed afresh each step.
package struct BertParameters {
    package let config: BertConfig
    package let embeddings: EmbeddingTables
    package let embeddingsLayerNorm: LayerNormWeights
    package let layers: [BertLayer]
    /// Pooler and classifier; nil for a bare BertModel.
    package let head: HeadParameters?

    package init(
        config: BertConfig, embeddings: EmbeddingTables, embeddingsLayerNorm: LayerNormWeights, layers: [BertLayer],
        head: HeadParameters?
    ) {
        (self.config, self.embeddings, self.embeddingsLayerNorm) = (config, embeddings, embeddingsLayerNorm)
        (self.layers, self.head) = (layers, head)
    }

    /// Every head and MLP present, on these weights.
    package var fullPlan: ExecutionPlan {
        ExecutionPlan(
            layers: layers.map {
                LayerPlan(
                    keptHeads: Array(0..<config.numAttentionHeads), qkv: $0.qkv, attentionOutput: $0.attentionOutput,
                    attentionConstant: nil, mlpConstant: nil)
            })
    }

    package var shape: BlockShape {
        BlockShape(
            hidden: config.hiddenSize, inner: config.intermediateSize, heads: config.numAttentionHeads,
            headDim: config.headDim, eps: config.layerNormEps)
    }
}

/// Training mode: dropout probabilities, where the multipliers come from, and which gradients will be asked.
package struct TrainingMode {
    /// BERT's hidden dropout (embeddings, attention output, MLP output, pooled output).
    package var dropout: Float
    /// Dropout on the attention probabilities.
    package var attentionDropout: Float
    package var seed: UInt64
    /// Keep the inputs of every Linear (weight gradients), not only what mask gradients need.
    package var weightGradients: Bool

    package init(dropout: Float, attentionDropout: Float, seed: UInt64, weightGradients: Bool) {
        (self.dropout, self.attentionDropout, self.seed) = (dropout, attentionDropout, seed)
        self.weightGradients = weightGradients
    }
}

/// Every activation of one pass, by name (llm.c's ActivationTensors).
package final class ActivationTable {
    /// [N, D] the residual stream: the embeddings, then each layer's output in place.
    package let x: UnsafeMutablePointer<Float>
    /// [N, D] the embedding sum before its LayerNorm, and that LayerNorm's statistics (fine-tuning's backward).
    package let embeddingSum: UnsafeMutablePointer<Float>?
    package let embeddingStatistics: LayerNormStatistics?
    /// One per layer when a backward follows; one shared by every layer otherwise.
    package let layers: [LayerActivations]
    package let head: HeadCache
    /// Dropout multipliers of the embedding output [N, D] and the pooled output [B, D].
    package let dropEmbeddings, dropPooled: UnsafeMutablePointer<Float>?
    /// [B, D] scratch of the [CLS] rows.
    package let xCLS: UnsafeMutablePointer<Float>

    package func layer(_ l: Int) -> LayerActivations { layers.count == 1 ? layers[0] : layers[l] }

    /// Buffers for a pass over `batch`: inference (nothing kept; `probabilities` keeps the attention
    /// probabilities for observers), or training mode (every layer's activations and dropout multipliers).
    /// `reading`: the request the pass will run, so that multipliers it never reads — a skipped unit's, the last
    /// layer's non-[CLS] rows after attention — are not drawn (the others are the same draws of the stream).
    package init(
        arena: ScratchArena, batch: TokenBatch, shape s: BlockShape, layers L: Int, training: TrainingMode? = nil,
        probabilities: Bool = false, reading: PassRequest? = nil
    ) {
        let (N, B, D) = (batch.tokenCount, batch.count, s.hidden)
        x = arena.take(N * D)
        xCLS = arena.take(B * D)
        head = HeadCache(arena: arena, sequences: B, hidden: D)
        let probCount = attentionProbOffsets(offsets: batch.offsets, heads: s.heads).last!
        guard let t = training else {
            layers = [
                LayerActivations(inference: arena, tokens: N, shape: s, probabilities: probabilities ? probCount : nil)
            ]
            (embeddingSum, embeddingStatistics, dropEmbeddings, dropPooled) = (nil, nil, nil, nil)
            return
        }
        var rng = SplitMix64(seed: t.seed)
        let read = ReadMultipliers(request: reading, batch: batch, shape: s, layers: L)
        dropEmbeddings = dropoutMultipliers(N * D, p: t.dropout, rng: &rng, arena: arena)
        let attention = (0..<L).map { l in
            dropoutMultipliers(N * D, p: t.dropout, rng: &rng, arena: arena, only: read.hiddenRows(l))
        }
        let mlp = (0..<L).map { l in
            dropoutMultipliers(N * D, p: t.dropout, rng: &rng, arena: arena, only: read.mlpRows(l))
        }
        dropPooled = dropoutMultipliers(B * D, p: t.dropout, rng: &rng, arena: arena)
        let probs = (0..<L).map { l in
            dropoutBits(probCount, p: t.attentionDropout, rng: &rng, arena: arena, only: read.probabilities(l))
        }
        // Without weight gradients nothing reads gelu(u) after a layer's forward: one buffer serves every layer.
        let sharedGelu = t.weightGradients ? nil : arena.take(N * s.inner)
        layers = (0..<L).map { l in
            LayerActivations(
                training: arena, tokens: N, shape: s, probabilities: probCount, weightGradients: t.weightGradients,
                geluOutput: sharedGelu,
                dropout: LayerDropout(attention: attention[l], mlp: mlp[l], probabilities: probs[l]))
        }
        embeddingSum = t.weightGradients ? arena.take(N * D) : nil
        embeddingStatistics = t.weightGradients ? LayerNormStatistics(mean: arena.take(N), rstd: arena.take(N)) : nil
    }
}

/// The dropout multipliers a training pass reads (nil: all of a buffer).
struct ReadMultipliers {
    let request: PassRequest?
    let batch: TokenBatch
    let shape: BlockShape
    let layers: Int

    /// Layer l's attention-output multipliers: the last layer's [CLS] rows only when it runs `.cls`.
    func hiddenRows(_ l: Int) -> [Range<Int>]? {
        guard let request, l == layers - 1, request.lastLayer == .cls else { return nil }
        let D = shape.hidden
        return batch.offsets.dropLast().map { ($0 * D)..<(($0 + 1) * D) }
    }

    /// Layer l's MLP-output multipliers: none when the plan replaces the MLP by its constant.
    func mlpRows(_ l: Int) -> [Range<Int>]? {
        request?.plan.layers[l].mlpConstant != nil ? [] : hiddenRows(l)
    }

    /// Layer l's attention-probability multipliers: the kept heads' blocks only.
    func probabilities(_ l: Int) -> [Range<Int>]? {
        guard let kept = request?.plan.layers[l].keptHeads, kept.count < shape.heads else { return nil }
        let base = attentionProbOffsets(offsets: batch.offsets, heads: shape.heads)
        return (0..<batch.count).flatMap { s in
            let t = batch.offsets[s + 1] - batch.offsets[s]
            return kept.map { h in (base[s] + h * t * t)..<(base[s] + (h + 1) * t * t) }
        }
    }
}

/// What a pass asks of the composition besides the batch: the plan, soft masks, hooks, the last layer's rows.
package struct PassRequest {
    package var plan: ExecutionPlan
    package var masks: SoftMasks?
    package var observer: ForwardObserver?
    package var lastLayer: LayerRows

    package init(plan: ExecutionPlan, masks: SoftMasks? = nil, observer: ForwardObserver? = nil, lastLayer: LayerRows) {
        (self.plan, self.masks, self.observer, self.lastLayer) = (plan, masks, observer, lastLayer)
    }
}

extension BertParameters {
    /// The context every layer of a pass over `batch` shares.
    package func context(
        _ batch: TokenBatch, _ request: PassRequest, _ t: ActivationTable, arena: ScratchArena, pool: ThreadPool
    )
        -> PassContext
    {
        PassContext(
            batch: batch, shape: shape, masks: request.masks, observer: request.observer, xCLS: t.xCLS, arena: arena,
            pool: pool)
    }

    /// x ← Dropout(LayerNorm(embedding sum)) of a validated batch, into `t.x`.
    package func embeddingsForward(
        _ batch: TokenBatch, _ t: ActivationTable, observer: ForwardObserver?, pool: ThreadPool
    ) {
        StageTimer.shared.measure("embeddings") {
            embeddingsBlockForward(
                batch, embeddings, embeddingsLayerNorm, hidden: config.hiddenSize, eps: config.layerNormEps, into: t.x,
                sum: t.embeddingSum, statistics: t.embeddingStatistics, pool: pool)
        }
        multiply(t.x, by: t.dropEmbeddings, count: batch.tokenCount * config.hiddenSize)
        observer?.embeddings(t.x, tokens: batch.tokenCount)
    }

    /// Layers `range` on x [N, D] in place. `x` holds the embedding output when the range starts at 0 and
    /// `fromEmbeddings`, so layer 0 computes Q/K/V once per distinct row. `afterLayer(l, x)` sees each output.
    package func encoderForward(
        _ x: UnsafeMutablePointer<Float>, _ request: PassRequest, _ t: ActivationTable, _ p: PassContext,
        range: Range<Int>, fromEmbeddings: Bool, afterLayer: ((Int, UnsafePointer<Float>) -> Void)? = nil
    ) {
        var l = range.lowerBound
        while l < range.upperBound {
            let rows = l == layers.count - 1 ? request.lastLayer : .all
            let c = t.layer(l)
            // Following layers with no head and a pruned MLP are LayerNorms row by row: in a pass that keeps and
            // sees nothing, they run in this layer's last sweep (the same bits, sweeps over memory fewer).
            var tail: [LayerNormStep] = []
            var end = l + 1
            while end < min(range.upperBound, layers.count - 1), chainsLayerNorms(c, observer: request.observer),
                afterLayer == nil, let steps = rowwiseSteps(layers[end], plan: request.plan.layers[end], eps: shape.eps)
            {
                tail += steps
                end += 1
            }
            encoderLayerForward(
                x, layer: l, layers[l], plan: request.plan.layers[l], c, p, rows: rows,
                sharedEmbeddingRows: l == 0 && fromEmbeddings, tail: tail)
            request.observer?.layerOutput(layer: l, x, tokens: p.tokens)
            afterLayer?(l, x)
            l = end
        }
    }

    /// Logits [B, C] from the final hidden states x [N, D] (the pooled output dropped in training mode).
    package func headForward(
        _ x: UnsafePointer<Float>, _ t: ActivationTable, batch: TokenBatch, observer: ForwardObserver?, pool: ThreadPool
    )
        -> [Float]
    {
        let see: ((UnsafePointer<Float>) -> Void)? = observer.map { o in { o.pooled($0, sequences: batch.count) } }
        return classifierHeadForward(
            x, offsets: batch.offsets, head!, t.head, hidden: config.hiddenSize, drop: t.dropPooled, seePooled: see,
            pool: pool)
    }

    /// The whole forward: embeddings, every layer, the head. Returns the logits [B, C].
    package func forward(
        _ batch: TokenBatch, _ request: PassRequest, _ t: ActivationTable, arena: ScratchArena, pool: ThreadPool
    ) -> [Float] {
        let p = context(batch, request, t, arena: arena, pool: pool)
        embeddingsForward(batch, t, observer: request.observer, pool: pool)
        encoderForward(t.x, request, t, p, range: 0..<layers.count, fromEmbeddings: true)
        return headForward(t.x, t, batch: batch, observer: request.observer, pool: pool)
    }
}

// MARK: - backward

/// The transposed weights of every layer and of the head, for dX = dY·W.
package struct BertBackwardWeights {
    package let layers: [LayerBackwardWeights]
    package let head: HeadParameters

    package init(_ p: BertParameters) {
        layers = p.layers.map(LayerBackwardWeights.init)
        head = HeadParameters(pooler: p.head!.pooler, classifier: p.head!.classifier, transposed: true)
    }
    init(layers: [LayerBackwardWeights], head: HeadParameters) {
        (self.layers, self.head) = (layers, head)
    }
}

/// Where every weight gradient accumulates (fine-tuning).
package struct BertGradients {
    package let embeddings: EmbeddingTables
    package let embeddingsNorm: NormGradientSlot
    package let layers: [LayerGradients]
    package let pooler: LinearGradientSlot?
    package let classifier: LinearGradientSlot

    package init(
        embeddings: EmbeddingTables, embeddingsNorm: NormGradientSlot, layers: [LayerGradients],
        pooler: LinearGradientSlot?, classifier: LinearGradientSlot
    ) {
        (self.embeddings, self.embeddingsNorm, self.layers) = (embeddings, embeddingsNorm, layers)
        (self.pooler, self.classifier) = (pooler, classifier)
    }
}

extension BertParameters {
    /// Backward of `forward` (run in training mode over the full plan) from d loss / d logits [B, C]: the head,
    /// then each layer last to first, then (with `grads`) the embeddings. Returns d loss / d mask per layer when
    /// the request has masks; adds every weight gradient into `grads` when given.
    package func backward(
        _ dlogits: [Float], _ batch: TokenBatch, _ request: PassRequest, _ t: ActivationTable,
        _ wT: BertBackwardWeights,
        grads: BertGradients?, arena: ScratchArena, pool: ThreadPool
    ) -> [LayerMaskGradients]? {
        let (N, B, D, L) = (batch.tokenCount, batch.count, config.hiddenSize, layers.count)
        let p = context(batch, request, t, arena: arena, pool: pool)
        let dx = arena.take(N * D)
        let dpooled = arena.take(B * D)
        let dcls = arena.take(B * D)
        let scratch = LayerBackwardScratch(arena: arena, tokens: N, shape: shape)
        classifierHeadBackward(
            dlogits, wT.head, t.head, hidden: D, drop: t.dropPooled,
            grads: grads.map { (pooler: $0.pooler, classifier: $0.classifier) }, dpooled: dpooled, dcls: dcls,
            pool: pool)
        // The last layer's output gradient: dcls for its [CLS] rows, or scattered into zero rows.
        scatterCLS(dcls, into: dx, offsets: batch.offsets, width: D, zeroOthers: true)
        var maskGradients: [LayerMaskGradients] = []
        for l in stride(from: L - 1, through: 0, by: -1) {
            let rows = l == L - 1 ? request.lastLayer : .all
            // Below layer 0 only the embeddings' weights need a gradient.
            let g = encoderLayerBackward(
                rows == .cls ? dcls : dx, layer: l, layers[l], wT.layers[l], plan: request.plan.layers[l],
                t.layer(l), p, rows: rows,
                scratch: scratch,
                grads: grads?.layers[l], dx: l == 0 && grads == nil ? nil : dx)
            if let g { maskGradients.insert(g, at: 0) }
        }
        if let grads { embeddingsBackward(dx, batch, t, grads, pool: pool) }
        return request.masks == nil ? nil : maskGradients
    }

    /// Through the embeddings' dropout and LayerNorm into the three tables' gradients.
    func embeddingsBackward(
        _ dx: UnsafeMutablePointer<Float>, _ batch: TokenBatch, _ t: ActivationTable, _ grads: BertGradients,
        pool: ThreadPool
    ) {
        let (N, D) = (batch.tokenCount, config.hiddenSize)
        let (e, stats) = (t.embeddingSum!, t.embeddingStatistics!)
        multiply(dx, by: t.dropEmbeddings, count: N * D)

        layerNormParameterGradients(
            dx, x: e, mean: stats.mean, rstd: stats.rstd, rows: N, count: D, dGamma: grads.embeddingsNorm.gamma,
            dBeta: grads.embeddingsNorm.beta)
        layerNormBackward(
            dx, x: e, mean: stats.mean, rstd: stats.rstd, gamma: embeddingsLayerNorm.gamma, rows: N, count: D, dx: dx,
            pool: pool)
        embeddingSumBackward(dx, batch, hidden: D, gradients: grads.embeddings)
    }
}
