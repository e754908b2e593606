// Mean ablation, written once. A pruned unit's output is replaced by its mean activation (the paper's
// ablation), or by zero:
//   head h of layer l:  ctx_h ← (ctx_h − avg_head[l,h])·z + avg_head[l,h]     zero ablation: ctx_h·z
//   MLP of layer l:     m ← (m − avg_mlp[l])·z + avg_mlp[l]                   zero ablation: m·z
// Soft masks and path patching apply it to activations (`pull`); for a binary mask it is folded into weights
// instead — a pruned head's context is the constant avg_h, so W_O·ctx gains W_O[:, h]·avg_h, added to W_O's
// bias (`foldedOutputBias`); a pruned MLP adds the constant `mlpConstant`. Compiled plans and exported models
// use the fold; both compute the masked model's function.
import Kernels

/// What replaces a pruned unit's output.
public enum Ablation: Sendable {
    case mean(MeanActivations)
    case zero
}

extension Ablation {
    /// avg_h [d] of layer l, head h (nil for zero ablation).
    public func headMean(layer l: Int, head h: Int, heads H: Int, headDim d: Int) -> ArraySlice<Float>? {
        guard case .mean(let avg) = self else { return nil }
        return avg.avgHead[((l * H + h) * d)..<((l * H + h + 1) * d)]
    }

    /// avg_mlp [D] of layer l (nil for zero ablation).
    public func mlpMean(layer l: Int, hidden D: Int) -> ArraySlice<Float>? {
        guard case .mean(let avg) = self else { return nil }
        return avg.avgMLP[(l * D)..<((l + 1) * D)]
    }

    /// y ← (y − avg)·z + avg (zero ablation: y·z) over `rows` rows of `width` values, `stride` apart.
    static func pull(
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

    /// Head `h`'s columns of a layer's context ctx [rows, H·d] replaced by its ablation value (z = 0).
    public func ablateHead(
        _ ctx: UnsafeMutablePointer<Float>, rows: Int, layer l: Int, head h: Int, heads H: Int, headDim d: Int
    ) {
        Ablation.pull(
            ctx + h * d, rows: rows, width: d, stride: H * d, z: 0,
            mean: headMean(layer: l, head: h, heads: H, headDim: d))
    }

    /// The attention output's bias with the pruned heads' constant contributions folded in, summed in Double:
    /// b_O + Σ_{h pruned} W_O[:, h·d ..< (h+1)·d] · avg_h (zero ablation: b_O).
    public func foldedOutputBias(_ wo: PackedLinear, layer l: Int, pruned: [Int], heads H: Int, headDim d: Int)
        -> [Float]
    {
        var bias = (wo.biasArray ?? [Float](repeating: 0, count: wo.n)).map(Double.init)
        if case .mean(let avg) = self, !pruned.isEmpty {
            let cols = pruned.flatMap { h in (h * d)..<((h + 1) * d) }
            wo.accumulateColumns(cols, times: cols.map { Double(avg.avgHead[l * H * d + $0]) }, into: &bias)
        }
        return bias.map(Float.init)
    }

    /// A pruned MLP's constant output [D]: avg_mlp[l], or zeros.
    public func mlpConstant(layer l: Int, hidden D: Int) -> [Float] {
        mlpMean(layer: l, hidden: D).map(Array.init) ?? [Float](repeating: 0, count: D)
    }
}
