// The soft-mask hook every masked pass applies (inference's general path, mask gradients, circuits):
// a head's context or an MLP's output is pulled towards its ablation value by its mask z ∈ [0, 1]:
//   mean ablation:  y ← (y − avg)·z + avg        zero ablation:  y ← y·z
// and its backward, d z = Σ dy_masked ⊙ (y − avg)  (zero ablation: ⊙ y), d y = dy_masked · z.
import Kernels

/// Continuous masks with what replaces a pruned unit's output.
package struct SoftMasks: Sendable {
    package var masks: MaskValues
    package var ablation: Ablation

    package init(masks: MaskValues, ablation: Ablation) {
        self.masks = masks
        self.ablation = ablation
    }

    /// avg_h [d] of layer l, head h (nil for zero ablation).
    func headMean(layer l: Int, head h: Int, heads H: Int, headDim d: Int) -> ArraySlice<Float>? {
        guard case .mean(let avg) = ablation else { return nil }
        return avg.avgHead[((l * H + h) * d)..<((l * H + h + 1) * d)]
    }

    /// avg_mlp [D] of layer l (nil for zero ablation).
    func mlpMean(layer l: Int, hidden D: Int) -> ArraySlice<Float>? {
        guard case .mean(let avg) = ablation else { return nil }
        return avg.avgMLP[(l * D)..<((l + 1) * D)]
    }

    /// ctx [rows, H·d] of layer l, every head masked in place.
    func applyHeads(_ ctx: UnsafeMutablePointer<Float>, rows: Int, layer l: Int, headDim d: Int) {
        let H = masks.heads[l].count
        for h in 0..<H where masks.heads[l][h] != 1 {
            apply(
                ctx + h * d, rows: rows, width: d, stride: H * d, z: masks.heads[l][h],
                mean: headMean(layer: l, head: h, heads: H, headDim: d))
        }
    }

    /// m [rows, D] of layer l, masked in place.
    func applyMLP(_ m: UnsafeMutablePointer<Float>, rows: Int, layer l: Int, hidden D: Int) {
        let z = masks.mlps[l]
        if z != 1 { apply(m, rows: rows, width: D, stride: D, z: z, mean: mlpMean(layer: l, hidden: D)) }
    }

    private func apply(
        _ y: UnsafeMutablePointer<Float>, rows: Int, width: Int, stride: Int, z: Float, mean: ArraySlice<Float>?
    ) {
        guard let mean else {
            for t in 0..<rows {
                let p = y + t * stride
                for c in 0..<width { p[c] *= z }
            }
            return
        }
        mean.withUnsafeBufferPointer { a in
            for t in 0..<rows {
                let p = y + t * stride
                for c in 0..<width { p[c] = (p[c] - a[c]) * z + a[c] }
            }
        }
    }

    /// Backward of one masked block [rows, width] at column offset `column` of rows `stride` apart:
    /// returns d z = Σ dy ⊙ (y − avg) and scales dy by z in place.
    static func backward(
        dy: UnsafeMutablePointer<Float>, y: UnsafePointer<Float>, rows: Int, width: Int, stride: Int,
        z: Float, mean: ArraySlice<Float>?
    ) -> Double {
        var g = 0.0
        for t in 0..<rows {
            let base = t * stride
            for e in 0..<width {
                let centered = y[base + e] - (mean.map { $0[$0.startIndex + e] } ?? 0)
                g += Double(dy[base + e]) * Double(centered)
                dy[base + e] *= z
            }
        }
        return g
    }
}
