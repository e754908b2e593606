// A masked training pass planned from its gates: the units whose sampled gate is exactly 0 and whose mask
// gradient nobody asks for are not computed. A hard-concrete gate clamped at 0 has ∂z/∂log α = 0, so pruning
// never needs its ∂loss/∂z; the unit contributes only its ablation value, and with it gone
//   - a head: its Q/K/V rows, its attention and its W_O columns leave the layer's GEMMs; its constant
//     W_O·avg_h joins W_O's bias (as a compiled subnetwork folds it: MeanAblation.swift), and its share of the
//     backward — its context gradient, attention backward and Q/K/V columns of dx — is not formed;
//   - a layer with every head closed: g = Dropout(b_O + Σ_h W_O·avg_h) + x, no attention at all;
//   - an MLP: h = a + avg_mlp, no GEMM forward or backward (its gradient below is dh, exactly what the
//     unskipped backward gives, since every term it drops is multiplied by z = 0).
// The skipped pass computes the unskipped pass's numbers to rounding: the folded bias under mean ablation, and
// dx = dqkv·W_qkv summing the kept columns in other K slices (GateSkippingTests compares them unit by unit).
import Kernels

/// Which units' mask gradients a pass must return; the others are returned as 0, uncomputed.
package struct GradientNeeds: Sendable {
    package var heads: [[Bool]]
    package var mlps: [Bool]

    package init(heads: [[Bool]], mlps: [Bool]) {
        (self.heads, self.mlps) = (heads, mlps)
    }
}

extension BertModel {
    /// The plan and backward weights of a masked pass over `masks`: every unit whose mask is 0 and whose gradient
    /// is not in `needs` is skipped; a layer losing nothing runs on the model's own weights (no copy). Layers are
    /// planned one per task (each gathers its own weights, megabytes a layer at bert-base).
    package func gatePlan(masks: MaskValues, ablation: Ablation, needs: GradientNeeds, pool: ThreadPool = .shared)
        -> (plan: ExecutionPlan, backward: BertBackwardWeights)
    {
        let full = backwardWeights
        let (H, d, D) = (headCount, headDim, hidden)
        var layerPlans = [(LayerPlan, LayerBackwardWeights)?](repeating: nil, count: layers.count)
        layerPlans.withUnsafeMutableBufferPointer { out in
            let out = out.baseAddress!
            pool.parallelFor(layers.count) { l in
                let plan = LayerPlan.keeping(
                    (0..<H).filter { masks.heads[l][$0] != 0 || needs.heads[l][$0] }, of: self, layer: l,
                    ablation: ablation,
                    mlpConstant: masks.mlps[l] == 0 && !needs.mlps[l] ? ablation.mlpConstant(layer: l, hidden: D) : nil)
                let kept = plan.keptHeads
                guard !kept.isEmpty && kept.count < H else {
                    out[l] = (plan, full.layers[l])
                    return
                }
                let rows = LayerPlan.headRows(kept, headDim: d)
                out[l] = (
                    plan, full.layers[l].keeping(qkvColumns: LayerPlan.qkvRows(rows, hidden: D), contextRows: rows)
                )
            }
        }
        return (
            ExecutionPlan(layers: layerPlans.map { $0!.0 }),
            BertBackwardWeights(layers: layerPlans.map { $0!.1 }, head: full.head)
        )
    }
}

extension LayerBackwardWeights {
    /// The transposed weights of a layer whose context has only the given rows of W_O's input (`contextRows`)
    /// and Q/K/V outputs (`qkvColumns`): dx = dqkv·W_qkv reads only those columns, dctx = dout·W_O only those rows.
    func keeping(qkvColumns: [Int], contextRows: [Int]) -> LayerBackwardWeights {
        LayerBackwardWeights(
            qkvT: qkvT.gatherColumns(qkvColumns), attentionOutputT: attentionOutputT.gatherRows(contextRows),
            intermediateT: intermediateT, outputT: outputT)
    }
}
