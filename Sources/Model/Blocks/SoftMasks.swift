// The soft-mask hook every masked pass applies (inference's general path, mask gradients, circuits): a head's
// context or an MLP's output is pulled towards its ablation value by its mask z ∈ [0, 1] (MeanAblation.swift),
// and its backward: d z = Σ dy_masked ⊙ (y − avg)  (zero ablation: ⊙ y), d y = dy_masked · z.
import Kernels

/// Continuous masks with what replaces a pruned unit's output.
package struct SoftMasks: Sendable {
    package var masks: MaskValues
    package var ablation: Ablation
    /// The units whose d loss / d z the caller uses (nil: every unit); the others' reductions are not computed.
    package var needs: GradientNeeds?

    package init(masks: MaskValues, ablation: Ablation, needs: GradientNeeds? = nil) {
        self.masks = masks
        self.ablation = ablation
        self.needs = needs
    }

    /// ctx [rows, k·d] of layer l holding the context of `heads` (k of them, in order), each masked in place.
    func applyHeads(_ ctx: UnsafeMutablePointer<Float>, rows: Int, layer l: Int, heads: [Int], headDim d: Int) {
        let H = masks.heads[l].count
        for (i, h) in heads.enumerated() where masks.heads[l][h] != 1 {
            Ablation.pull(
                ctx + i * d, rows: rows, width: d, stride: heads.count * d, z: masks.heads[l][h],
                mean: ablation.headMean(layer: l, head: h, heads: H, headDim: d))
        }
    }

    /// m [rows, D] of layer l, masked in place.
    func applyMLP(_ m: UnsafeMutablePointer<Float>, rows: Int, layer l: Int, hidden D: Int) {
        let z = masks.mlps[l]
        if z != 1 {
            Ablation.pull(m, rows: rows, width: D, stride: D, z: z, mean: ablation.mlpMean(layer: l, hidden: D))
        }
    }

    /// Backward of one masked block [rows, width] of rows `stride` apart: writes (dy · z) ⊙ dropout into `out` (it
    /// may be dy) and returns d z = Σ dy ⊙ (y − avg) when `needed` (else 0, not computed).
    func backward(
        dy: UnsafePointer<Float>, y: UnsafePointer<Float>, rows: Int, width: Int, stride: Int,
        z: Float, mean: ArraySlice<Float>?, needed: Bool, out: UnsafeMutablePointer<Float>,
        dropout: UnsafePointer<Float>? = nil
    ) -> Double {
        let run = { (mean: UnsafePointer<Float>?) in
            maskBackward(
                dy: dy, y: y, rows: rows, width: width, stride: stride, z: z, mean: mean, needed: needed, out: out,
                dropout: dropout)
        }
        guard let mean else { return run(nil) }
        return mean.withUnsafeBufferPointer { run($0.baseAddress!) }
    }
}
