// The classification head of BertForSequenceClassification, forward and backward:
//   cls = x[CLS rows]  [B, D];  pooled = tanh(cls W_pᵀ + b_p)  (no pooler: pooled = cls)
//   logits = Dropout(pooled) W_cᵀ + b_c  [B, C]
// Inference (`BertModel.classify`), mask gradients and fine-tuning all run this forward.
import Foundation
import Kernels

/// The head's weights; the transposed packs (dX = dY·W) are needed by the backward only.
package struct HeadParameters {
    package let pooler: PackedLinear?
    package let classifier: PackedLinear
    package var poolerT: PackedLinear? = nil
    package var classifierT: PackedLinear? = nil

    /// `transposed`: also pack Wᵀ for the backward.
    package init(pooler: PackedLinear?, classifier: PackedLinear, transposed: Bool = false) {
        self.pooler = pooler
        self.classifier = classifier
        if transposed {
            poolerT = pooler?.transposedForBackward()
            classifierT = classifier.transposedForBackward()
        }
    }
}

/// What the head's forward keeps: cls, pooled (for tanh'), pooled after dropout (the classifier's input).
package struct HeadCache {
    package let cls, pooled, pooledDropped: UnsafeMutablePointer<Float>  // [B, D] each
    package init(arena: ScratchArena, sequences B: Int, hidden D: Int) {
        cls = arena.take(B * D)
        pooled = arena.take(B * D)
        pooledDropped = arena.take(B * D)
    }
}

/// Logits [B, C] from hidden states x [N, D]. `drop`: dropout multipliers [B, D] for the pooled output;
/// `seePooled` sees the pooled output before dropout (observers).
package func classifierHeadForward(
    _ x: UnsafePointer<Float>, offsets: [Int], _ p: HeadParameters, _ c: HeadCache, hidden D: Int,
    drop: UnsafePointer<Float>? = nil, seePooled: ((UnsafePointer<Float>) -> Void)? = nil,
    pool: ThreadPool
) -> [Float] {
    let B = offsets.count - 1
    let C = p.classifier.n
    gatherCLS(x, into: c.cls, offsets: offsets, width: D)
    if let pooler = p.pooler {
        gemm(c.cls, rows: B, lda: D, pooler, out: c.pooled, ldc: D, epilogue: .bias, pool: pool)
        for i in 0..<(B * D) { c.pooled[i] = tanh(c.pooled[i]) }
    } else {
        c.pooled.update(from: c.cls, count: B * D)
    }
    seePooled?(c.pooled)
    c.pooledDropped.update(from: c.pooled, count: B * D)
    multiply(c.pooledDropped, by: drop, count: B * D)
    var logits = [Float](repeating: 0, count: B * C)
    logits.withUnsafeMutableBufferPointer {
        gemm(c.pooledDropped, rows: B, lda: D, p.classifier, out: $0.baseAddress!, ldc: C, epilogue: .bias, pool: pool)
    }
    return logits
}

/// Backward of the head: d loss / d cls [B, D] into `dcls`, weight gradients into `grads` when given.
package func classifierHeadBackward(
    _ dlogits: [Float], _ p: HeadParameters, _ c: HeadCache, hidden D: Int,
    drop: UnsafePointer<Float>?, grads: (pooler: LinearGradientSlot?, classifier: LinearGradientSlot)?,
    dpooled: UnsafeMutablePointer<Float>, dcls: UnsafeMutablePointer<Float>, pool: ThreadPool
) {
    let C = p.classifier.n
    let B = dlogits.count / C
    dlogits.withUnsafeBufferPointer { dl in
        if let g = grads?.classifier {
            accumulateLinearGradients(
                dy: dl.baseAddress!, ldy: C, x: c.pooledDropped, ldx: D, rows: B, out: C, inp: D,
                dW: g.weight, db: g.bias, pool: pool)
        }
        gemm(dl.baseAddress!, rows: B, lda: C, p.classifierT!, out: dpooled, ldc: D, epilogue: .none, pool: pool)
    }
    multiply(dpooled, by: drop, count: B * D)
    guard let poolerT = p.poolerT else {
        dcls.update(from: dpooled, count: B * D)
        return
    }
    for i in 0..<(B * D) { dpooled[i] *= 1 - c.pooled[i] * c.pooled[i] }  // tanh'
    if let g = grads?.pooler {
        accumulateLinearGradients(
            dy: dpooled, ldy: D, x: c.cls, ldx: D, rows: B, out: D, inp: D, dW: g.weight, db: g.bias, pool: pool)
    }
    gemm(dpooled, rows: B, lda: D, poolerT, out: dcls, ldc: D, epilogue: .none, pool: pool)
}
