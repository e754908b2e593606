// The losses of the backward passes, with their gradient with respect to the logits:
//   KL batchmean (pruning's faithfulness term):  loss = (1/B) Σ_b Σ_c t[b,c] (log t[b,c] − log p[b,c])
//   cross-entropy (fine-tuning, importance):      loss = (1/B) Σ_b −log p[b, label_b]   (t one-hot)
// Both: d loss / d logits = (p − t)/B, p = softmax(logits). Computed in Double.
import Foundation

/// softmax of one row, in Double.
public func softmaxDouble(_ v: [Float]) -> [Double] {
    let m = Double(v.max() ?? 0)
    let e = v.map { exp(Double($0) - m) }
    let s = e.reduce(0, +)
    return e.map { $0 / s }
}

/// log-softmax of one row, in Double.
public func logSoftmaxDouble(_ v: [Float]) -> [Double] {
    let m = Double(v.max() ?? 0)
    let lse = m + log(v.reduce(0.0) { $0 + exp(Double($1) - m) })
    return v.map { Double($0) - lse }
}

/// One-hot targets [B·C] for labels.
package func oneHot(_ labels: [Int], classes C: Int) -> [Double] {
    labels.flatMap { label in (0..<C).map { $0 == label ? 1.0 : 0.0 } }
}

/// The loss of logits [B, C] against target distributions [B·C] and d loss / d logits [B, C].
/// `kl`: the KL term above (t log t included); otherwise cross-entropy to t.
package func distributionLoss(logits: [Float], targets: [Double], classes C: Int, kl: Bool) -> (
    loss: Double, dlogits: [Float]
) {
    let B = logits.count / C
    var loss = 0.0
    var dlogits = [Float](repeating: 0, count: B * C)
    for b in 0..<B {
        let row = Array(logits[(b * C)..<((b + 1) * C)])
        let p = softmaxDouble(row)
        // KL: log p as log t is computed (t is a softmax of the full model's logits), so identical logits give
        // exactly 0; cross-entropy: the log-softmax, finite however confident the model.
        let logp = kl ? p.map { log($0) } : logSoftmaxDouble(row)
        for c in 0..<C {
            let t = targets[b * C + c]
            if t > 0 { loss += t * ((kl ? log(t) : 0) - logp[c]) }
            dlogits[b * C + c] = Float((p[c] - t) / Double(B))
        }
    }
    return (loss / Double(max(1, B)), dlogits)
}
