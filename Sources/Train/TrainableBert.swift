// A BERT classifier whose weights train: every parameter in one flat fp32 buffer (with its gradient and
// the Hugging Face name of each slice), the forward pass with dropout, and the backward pass with respect
// to every weight — each layer's forward and backward side by side, as in Model/Backward.swift (which
// does the same with respect to the mask values, weights frozen).
//
//   x0  = Dropout(LayerNorm(word[ids] + position[0..<T] + token_type[tt]))
//   per layer:  qkv = x Wqkvᵀ + b;  ctx = softmax(QKᵀ/√d) V;  g = Dropout(ctx W_Oᵀ + b_O) + x;  a = LN1(g)
//               u = a W_iᵀ + b_i;  m = Dropout(gelu(u) W_2ᵀ + b_2);  h = m + a;  x = LN2(h)
//   pooled = tanh(x[CLS] W_pᵀ + b_p);  logits = Dropout(pooled) W_cᵀ + b_c;  loss = mean CE
//
// Dropout is BERT's hidden dropout (embeddings, attention output, MLP output, classifier input), inverted
// (kept values scaled by 1/(1−p)). Attention-probability dropout is not applied (documented in --help).
import Checkpoint
import Foundation
import Kernels
import Model

/// Offsets of one Linear's weight [out, in] and bias [out] in the flat parameter buffer.
struct LinearSlot { let w: Int, b: Int, out: Int, inp: Int }
/// Offsets of a LayerNorm's weight (γ) and bias (β).
struct NormSlot { let g: Int, b: Int }
struct LayerSlots { let qkv, attentionOutput: LinearSlot; let attentionNorm: NormSlot; let intermediate, output: LinearSlot; let outputNorm: NormSlot }

public final class TrainableBert: @unchecked Sendable {
    public let config: BertConfig
    /// Every tensor as the checkpoint names it, in file order, with its slice of `params`.
    public private(set) var tensors: [(name: String, shape: [Int], offset: Int)] = []
    public let parameterCount: Int
    /// All weights, flat fp32; `grads` has the same layout.
    public let params: UnsafeMutablePointer<Float>
    public let grads: UnsafeMutablePointer<Float>

    let word, position, tokenType: Int
    let embeddingNorm: NormSlot
    let layers: [LayerSlots]
    let pooler: LinearSlot
    let classifier: LinearSlot

    /// Parameters with Hugging Face's usual initialisation: N(0, 0.02) weights and embeddings (the padding
    /// row zero), zero biases, LayerNorm γ = 1, β = 0.
    public convenience init(config: BertConfig, seed: UInt64) {
        self.init(layout: config)
        var rng = SplitMix64(seed: seed)
        for t in tensors {
            let n = t.shape.reduce(1, *)
            let p = params + t.offset
            if t.name.hasSuffix("LayerNorm.weight") {
                for i in 0..<n { p[i] = 1 }
            } else if t.name.hasSuffix(".bias") {
                for i in 0..<n { p[i] = 0 }
            } else {
                for i in 0..<n { p[i] = Float(0.02 * rng.normal()) }
                if t.name.hasSuffix("word_embeddings.weight") {
                    for j in 0..<config.hiddenSize { p[config.padTokenId * config.hiddenSize + j] = 0 }
                }
            }
        }
    }

    /// Starts from a loaded model (a pretrained checkpoint to fine-tune). A model without a classifier
    /// gets a fresh N(0, 0.02) one for `config.numLabels` labels.
    public convenience init(model: BertModel, labels: [String]? = nil, seed: UInt64 = 42) throws {
        var c = model.config
        if let labels { c.labels = labels }
        self.init(config: c, seed: seed)
        func copy(_ values: [Float], to offset: Int) { values.withUnsafeBufferPointer { (params + offset).update(from: $0.baseAddress!, count: values.count) } }
        func copy(_ lin: PackedLinear, _ slot: LinearSlot) {
            copy(lin.unpacked(), to: slot.w)
            if let b = lin.biasArray { copy(b, to: slot.b) }
        }
        copy(model.wordEmbeddings, to: word)
        copy(model.positionEmbeddings, to: position)
        copy(model.tokenTypeEmbeddings, to: tokenType)
        copy(model.embeddingsLayerNorm.gamma, to: embeddingNorm.g); copy(model.embeddingsLayerNorm.beta, to: embeddingNorm.b)
        for (l, s) in layers.enumerated() {
            let m = model.layers[l]
            copy(m.qkv, s.qkv); copy(m.attentionOutput, s.attentionOutput); copy(m.intermediate, s.intermediate); copy(m.output, s.output)
            copy(m.attentionLayerNorm.gamma, to: s.attentionNorm.g); copy(m.attentionLayerNorm.beta, to: s.attentionNorm.b)
            copy(m.outputLayerNorm.gamma, to: s.outputNorm.g); copy(m.outputLayerNorm.beta, to: s.outputNorm.b)
        }
        if let p = model.pooler { copy(p, pooler) }
        if let cl = model.classifier, cl.n == c.numLabels { copy(cl, classifier) }
    }

    /// Lays out the tensors (values uninitialised).
    init(layout c: BertConfig) {
        config = c
        let D = c.hiddenSize, I = c.intermediateSize
        var list: [(String, [Int], Int)] = []
        var offset = 0
        func add(_ name: String, _ shape: [Int]) -> Int {
            list.append((name, shape, offset))
            defer { offset += shape.reduce(1, *) }
            return offset
        }
        func linear(_ name: String, _ out: Int, _ inp: Int) -> LinearSlot {
            let w = add(name + ".weight", [out, inp])
            return LinearSlot(w: w, b: add(name + ".bias", [out]), out: out, inp: inp)
        }
        func norm(_ name: String) -> NormSlot { let g = add(name + ".weight", [D]); return NormSlot(g: g, b: add(name + ".bias", [D])) }
        word = add("bert.embeddings.word_embeddings.weight", [c.vocabSize, D])
        position = add("bert.embeddings.position_embeddings.weight", [c.maxPositionEmbeddings, D])
        tokenType = add("bert.embeddings.token_type_embeddings.weight", [c.typeVocabSize, D])
        embeddingNorm = norm("bert.embeddings.LayerNorm")
        var layers: [LayerSlots] = []
        for l in 0..<c.numHiddenLayers {
            let p = "bert.encoder.layer.\(l)."
            // Query, key and value weights adjacent, then their biases: the fused [3D, D] Linear is one slice.
            let qw = add(p + "attention.self.query.weight", [D, D]); _ = add(p + "attention.self.key.weight", [D, D])
            _ = add(p + "attention.self.value.weight", [D, D])
            let qb = add(p + "attention.self.query.bias", [D]); _ = add(p + "attention.self.key.bias", [D])
            _ = add(p + "attention.self.value.bias", [D])
            layers.append(LayerSlots(qkv: LinearSlot(w: qw, b: qb, out: 3 * D, inp: D),
                                     attentionOutput: linear(p + "attention.output.dense", D, D),
                                     attentionNorm: norm(p + "attention.output.LayerNorm"),
                                     intermediate: linear(p + "intermediate.dense", I, D),
                                     output: linear(p + "output.dense", D, I),
                                     outputNorm: norm(p + "output.LayerNorm")))
        }
        self.layers = layers
        pooler = linear("bert.pooler.dense", D, D)
        classifier = linear("classifier", c.numLabels, D)
        tensors = list.map { (name: $0.0, shape: $0.1, offset: $0.2) }
        parameterCount = offset
        params = allocateFloats(offset)
        grads = allocateFloats(offset)
        zeroGradients()
    }

    deinit { params.deallocate(); grads.deallocate() }

    public func zeroGradients() { grads.update(repeating: 0, count: parameterCount) }

    /// The tensor `name` as an array (tests, saving).
    public func values(_ name: String) -> [Float]? {
        guard let t = tensors.first(where: { $0.name == name }) else { return nil }
        return Array(UnsafeBufferPointer(start: params + t.offset, count: t.shape.reduce(1, *)))
    }

    /// The model as safetensors tensors under the Hugging Face names (BertForSequenceClassification).
    public func safetensors(metadata: [String: String] = ["format": "pt"]) -> SafetensorsWriter {
        var w = SafetensorsWriter()
        w.metadata = metadata
        for t in tensors { w.add(t.name, shape: t.shape, Array(UnsafeBufferPointer(start: params + t.offset, count: t.shape.reduce(1, *)))) }
        return w
    }

    /// The current weights as an inference model (packed; for evaluation during training).
    public func inferenceModel(folder: String = "<training>") throws -> BertModel {
        let bytes = safetensors().serialized()
        return try BertModel(config: config, source: try SafetensorsFile(file: MappedFile(data: bytes, name: folder + "/model.safetensors")), folder: folder)
    }
}

// MARK: - training step

/// Per-step state: packed weights (forward and transposed) and every activation the backward needs.
final class StepBuffers {
    var all: [UnsafeMutablePointer<Float>] = []
    func make(_ n: Int) -> UnsafeMutablePointer<Float> { let p = allocateFloats(max(1, n)); all.append(p); return p }
    deinit { for p in all { p.deallocate() } }
}

/// What one layer's forward keeps. N tokens, D hidden, I inner.
struct LayerActivations {
    let xIn, qkv, probs, ctx, g, gMean, gRstd, a, u, gu, h, hMean, hRstd: UnsafeMutablePointer<Float>
    let dropAttention, dropMLP: UnsafeMutablePointer<Float>?   // [N, D] inverted-dropout multipliers
}

public struct StepResult: Sendable {
    public var loss: Double
    public var logits: [Float]   // [B, C]
}

extension TrainableBert {
    /// Cross-entropy of `labels` on `batch`, and its gradient with respect to every parameter added into
    /// `grads` (scaled by `gradientScale`, e.g. 1/accumulation). `dropout` 0 disables it.
    public func trainingStep(_ batch: TokenBatch, labels: [Int], dropout: Float, rng: inout SplitMix64,
                             gradientScale: Float = 1, pool: ThreadPool = .shared) throws -> StepResult {
        let B = batch.count, N = batch.tokenCount, D = config.hiddenSize, I = config.intermediateSize
        let H = config.numAttentionHeads, d = config.headDim, C = config.numLabels, eps = config.layerNormEps
        guard B > 0, labels.count == B, labels.allSatisfy({ (0..<C).contains($0) }) else {
            throw ModelError.badInput("a training batch needs one label in 0..<\(C) per sequence")
        }
        for s in 0..<B where batch.length(s) > config.maxPositionEmbeddings || batch.length(s) < 1 {
            throw ModelError.badInput("sequence of \(batch.length(s)) tokens; the model has \(config.maxPositionEmbeddings) positions")
        }
        for id in batch.inputIds where id < 0 || Int(id) >= config.vocabSize { throw ModelError.badInput("token id \(id) outside the vocabulary") }
        for t in batch.tokenTypeIds where t < 0 || Int(t) >= config.typeVocabSize { throw ModelError.badInput("token type \(t) outside the model's") }

        let buf = StepBuffers()
        let keep = 1 - dropout
        /// An inverted-dropout multiplier mask, or nil when dropout is off.
        func dropoutMask(_ n: Int) -> UnsafeMutablePointer<Float>? {
            guard dropout > 0 else { return nil }
            let m = buf.make(n)
            for i in 0..<n { m[i] = rng.uniform() < Double(dropout) ? 0 : 1 / keep }
            return m
        }
        func multiply(_ x: UnsafeMutablePointer<Float>, _ m: UnsafeMutablePointer<Float>?, _ n: Int) {
            guard let m else { return }
            for i in 0..<n { x[i] *= m[i] }
        }
        func packed(_ s: LinearSlot) -> PackedLinear { PackedLinear(weight: UnsafePointer(params + s.w), bias: UnsafePointer(params + s.b), n: s.out, k: s.inp) }

        // ---- embeddings ----
        let e = buf.make(N * D), eMean = buf.make(N), eRstd = buf.make(N), x = buf.make(N * D)
        for s in 0..<B {
            for p in 0..<batch.length(s) {
                let t = batch.offsets[s] + p
                let w = params + word + Int(batch.inputIds[t]) * D, pe = params + position + p * D
                let te = params + tokenType + Int(batch.tokenTypeIds[t]) * D
                for j in 0..<D { e[t * D + j] = w[j] + te[j] + pe[j] }
            }
        }
        layerNormForward(e, x, rows: N, count: D, gamma: params + embeddingNorm.g, beta: params + embeddingNorm.b, eps: eps, mean: eMean, rstd: eRstd)
        let dropEmbeddings = dropoutMask(N * D)
        multiply(x, dropEmbeddings, N * D)

        // ---- layers ----
        let probCount = attentionProbOffsets(offsets: batch.offsets, heads: H).last!
        var acts: [LayerActivations] = []
        var forwardPacks: [(qkv: PackedLinear, out: PackedLinear, inter: PackedLinear, ffn: PackedLinear)] = []
        for s in layers {
            let c = LayerActivations(xIn: buf.make(N * D), qkv: buf.make(N * 3 * D), probs: buf.make(probCount), ctx: buf.make(N * D),
                                     g: buf.make(N * D), gMean: buf.make(N), gRstd: buf.make(N), a: buf.make(N * D),
                                     u: buf.make(N * I), gu: buf.make(N * I), h: buf.make(N * D), hMean: buf.make(N), hRstd: buf.make(N),
                                     dropAttention: dropoutMask(N * D), dropMLP: dropoutMask(N * D))
            let p = (qkv: packed(s.qkv), out: packed(s.attentionOutput), inter: packed(s.intermediate), ffn: packed(s.output))
            c.xIn.update(from: x, count: N * D)
            gemm(x, rows: N, lda: D, p.qkv, out: c.qkv, ldc: 3 * D, epilogue: .bias, pool: pool)          // [N, 3D]
            attention(qkv: c.qkv, ldqkv: 3 * D, heads: H, headDim: d, offsets: batch.offsets, ctx: c.ctx, ldctx: D, probs: c.probs, pool: pool)
            gemm(c.ctx, rows: N, lda: D, p.out, out: c.g, ldc: D, epilogue: .bias, pool: pool)             // [N, D]
            multiply(c.g, c.dropAttention, N * D)
            addVectors(c.g, c.xIn, count: N * D)
            layerNormForward(c.g, c.a, rows: N, count: D, gamma: params + s.attentionNorm.g, beta: params + s.attentionNorm.b,
                             eps: eps, mean: c.gMean, rstd: c.gRstd)
            gemm(c.a, rows: N, lda: D, p.inter, out: c.u, ldc: I, epilogue: .bias, pool: pool)            // [N, I]
            c.gu.update(from: c.u, count: N * I)
            geluInPlace(c.gu, count: N * I)
            gemm(c.gu, rows: N, lda: I, p.ffn, out: c.h, ldc: D, epilogue: .bias, pool: pool)              // m [N, D]
            multiply(c.h, c.dropMLP, N * D)
            addVectors(c.h, c.a, count: N * D)
            layerNormForward(c.h, x, rows: N, count: D, gamma: params + s.outputNorm.g, beta: params + s.outputNorm.b,
                             eps: eps, mean: c.hMean, rstd: c.hRstd)
            acts.append(c)
            forwardPacks.append(p)
        }

        // ---- pooler, classifier, loss ----
        let cls = buf.make(B * D), pooled = buf.make(B * D), pooledDropped = buf.make(B * D), logits = buf.make(B * C)
        for s in 0..<B { (cls + s * D).update(from: x + batch.offsets[s] * D, count: D) }
        let poolerPack = packed(pooler), classifierPack = packed(classifier)
        gemm(cls, rows: B, lda: D, poolerPack, out: pooled, ldc: D, epilogue: .bias, pool: pool)
        for i in 0..<(B * D) { pooled[i] = tanhf(pooled[i]) }
        pooledDropped.update(from: pooled, count: B * D)
        let dropPooled = dropoutMask(B * D)
        multiply(pooledDropped, dropPooled, B * D)
        gemm(pooledDropped, rows: B, lda: D, classifierPack, out: logits, ldc: C, epilogue: .bias, pool: pool)
        var loss = 0.0
        let dlogits = buf.make(B * C)
        for b in 0..<B {
            let row = (0..<C).map { Double(logits[b * C + $0]) }
            let m = row.max()!
            let lse = m + log(row.reduce(0) { $0 + exp($1 - m) })
            loss -= row[labels[b]] - lse
            for c in 0..<C { dlogits[b * C + c] = Float((exp(row[c] - lse) - (c == labels[b] ? 1 : 0)) / Double(B)) * gradientScale }
        }
        loss /= Double(B)

        // ---- backward: classifier and pooler ----
        func grad(_ s: LinearSlot) -> (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>) { (grads + s.w, grads + s.b) }
        func linearBackward(dy: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>, rows: Int, _ s: LinearSlot, forward: PackedLinear,
                            dx: UnsafeMutablePointer<Float>?, residual: UnsafePointer<Float>? = nil) {
            let (dW, db) = grad(s)
            accumulateLinearGradients(dy: dy, ldy: s.out, x: x, ldx: s.inp, rows: rows, out: s.out, inp: s.inp, dW: dW, db: db, pool: pool)
            if let dx {
                gemm(dy, rows: rows, lda: s.out, forward.transposedForBackward(), out: dx, ldc: s.inp,
                     epilogue: residual.map { .biasResidual($0, ld: s.inp) } ?? .none, pool: pool)
            }
        }
        let dpooled = buf.make(B * D), dcls = buf.make(B * D)
        linearBackward(dy: dlogits, x: pooledDropped, rows: B, classifier, forward: classifierPack, dx: dpooled)
        multiply(dpooled, dropPooled, B * D)
        for i in 0..<(B * D) { dpooled[i] *= 1 - pooled[i] * pooled[i] }                                 // tanh'
        linearBackward(dy: dpooled, x: cls, rows: B, pooler, forward: poolerPack, dx: dcls)
        let dx = buf.make(N * D)
        dx.update(repeating: 0, count: N * D)
        for s in 0..<B { (dx + batch.offsets[s] * D).update(from: dcls + s * D, count: D) }

        // ---- backward: layers, last to first ----
        let dh = buf.make(N * D), dgu = buf.make(N * I), da = buf.make(N * D), dg = buf.make(N * D)
        let dctx = buf.make(N * D), dqkv = buf.make(N * 3 * D)
        for l in stride(from: layers.count - 1, through: 0, by: -1) {
            let s = layers[l], c = acts[l], p = forwardPacks[l]
            // x = LN2(h)
            layerNormParameterGradients(dx, x: c.h, mean: c.hMean, rstd: c.hRstd, rows: N, count: D,
                                        dGamma: grads + s.outputNorm.g, dBeta: grads + s.outputNorm.b)
            layerNormBackward(dx, x: c.h, mean: c.hMean, rstd: c.hRstd, gamma: params + s.outputNorm.g, rows: N, count: D, dx: dh, pool: pool)
            // h = Dropout(gu W2ᵀ + b2) + a
            let dm = dx   // reuse: dx is dead until the Q/K/V backward writes it again
            dm.update(from: dh, count: N * D)
            multiply(dm, c.dropMLP, N * D)
            linearBackward(dy: dm, x: c.gu, rows: N, s.output, forward: p.ffn, dx: dgu)
            geluBackward(dgu, preActivation: c.u, count: N * I)
            // u = a Wiᵀ + bi ; da = du Wi + dh (the residual path)
            linearBackward(dy: dgu, x: c.a, rows: N, s.intermediate, forward: p.inter, dx: da, residual: dh)
            // a = LN1(g)
            layerNormParameterGradients(da, x: c.g, mean: c.gMean, rstd: c.gRstd, rows: N, count: D,
                                        dGamma: grads + s.attentionNorm.g, dBeta: grads + s.attentionNorm.b)
            layerNormBackward(da, x: c.g, mean: c.gMean, rstd: c.gRstd, gamma: params + s.attentionNorm.g, rows: N, count: D, dx: dg, pool: pool)
            // g = Dropout(ctx W_Oᵀ + b_O) + xIn
            let dout = dh  // reuse
            dout.update(from: dg, count: N * D)
            multiply(dout, c.dropAttention, N * D)
            linearBackward(dy: dout, x: c.ctx, rows: N, s.attentionOutput, forward: p.out, dx: dctx)
            attentionBackward(qkv: c.qkv, ldqkv: 3 * D, probs: c.probs, dctx: dctx, ldctx: D, heads: H, headDim: d,
                              offsets: batch.offsets, dqkv: dqkv, pool: pool)
            // qkv = xIn Wqkvᵀ + b ; dx = dqkv Wqkv + dg
            linearBackward(dy: dqkv, x: c.xIn, rows: N, s.qkv, forward: p.qkv, dx: dx, residual: dg)
        }

        // ---- backward: embeddings ----
        multiply(dx, dropEmbeddings, N * D)
        layerNormParameterGradients(dx, x: e, mean: eMean, rstd: eRstd, rows: N, count: D, dGamma: grads + embeddingNorm.g, dBeta: grads + embeddingNorm.b)
        layerNormBackward(dx, x: e, mean: eMean, rstd: eRstd, gamma: params + embeddingNorm.g, rows: N, count: D, dx: dx, pool: pool)
        for s in 0..<B {
            for p in 0..<batch.length(s) {
                let t = batch.offsets[s] + p
                addVectors(grads + word + Int(batch.inputIds[t]) * D, dx + t * D, count: D)
                addVectors(grads + position + p * D, dx + t * D, count: D)
                addVectors(grads + tokenType + Int(batch.tokenTypeIds[t]) * D, dx + t * D, count: D)
            }
        }
        return StepResult(loss: loss, logits: Array(UnsafeBufferPointer(start: logits, count: B * C)))
    }
}

/// dγ += Σ_t dy ⊙ x̂ and dβ += Σ_t dy, x̂ = (x − mean)·rstd.
func layerNormParameterGradients(_ dy: UnsafePointer<Float>, x: UnsafePointer<Float>, mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>,
                                 rows: Int, count: Int, dGamma: UnsafeMutablePointer<Float>, dBeta: UnsafeMutablePointer<Float>) {
    for t in 0..<rows {
        let mu = mean[t], rs = rstd[t]
        for j in 0..<count {
            let g = dy[t * count + j]
            dGamma[j] += g * (x[t * count + j] - mu) * rs
            dBeta[j] += g
        }
    }
}

/// d ← d ⊙ gelu'(u) (exact-erf GELU).
func geluBackward(_ d: UnsafeMutablePointer<Float>, preActivation u: UnsafePointer<Float>, count: Int) {
    var i = 0
    while i + 16 <= count {
        let g = geluGrad16(UnsafeRawPointer(u + i).loadUnaligned(as: Vec16.self))
        let v = UnsafeRawPointer(d + i).loadUnaligned(as: Vec16.self) * g
        UnsafeMutableRawPointer(d + i).storeBytes(of: v, as: Vec16.self)
        i += 16
    }
    while i < count { d[i] *= geluGradReference(u[i]); i += 1 }
}
