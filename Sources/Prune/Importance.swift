// Head-importance scores (Michel et al., 2019): the gradient of a loss with respect to every head and MLP
// mask value, averaged over batches — the signal L0 pruning follows, from one backward pass per batch.
import Checkpoint
import Foundation
import Model
import Tokenizer

public struct ImportanceScores: Sendable {
    /// [L][H] and [L]: mean d(loss)/d(mask); negative means the unit lowers the loss (it helps).
    public var heads: [[Double]], mlps: [Double]
    public var loss: Double
    public var batches: Int, examples: Int

    public func json(objective: String) -> JSONValue {
        .object([
            ("heads", .array(heads.map { .array($0.map { .float($0) }) })), ("mlps", .array(mlps.map { .float($0) })),
            ("loss", .float(loss)), ("objective", .string(objective)), ("batches", .int(batches)),
            ("examples", .int(examples)),
        ])
    }

    /// What `hcore importance` prints without --json: a heading saying what the numbers are, then a line per layer.
    public func table(objective: String, signed: Bool) -> [String] {
        [
            (signed ? "mean d" : "Michel et al. importance: mean |d") + (objective == "kl" ? "KL" : "CE")
                + (signed ? "/dmask" : "/dmask|, heads L2-normalised per layer")
                + " over \(batches) batches (loss \(String(format: "%.5g", loss)))"
        ]
            + heads.indices.map { l in
                "layer \(l): " + heads[l].map { String(format: "%+.2e", $0) }.joined(separator: " ") + "   mlp "
                    + String(format: "%+.2e", mlps[l])
            }
    }
}

/// Mean mask gradients over `encodings` in batches of `batchSize`: KL(full ‖ subnetwork) when `labels` is
/// nil (zero at the full model, so score a subnetwork), else cross-entropy with those gold class indices.
/// `signed` false gives Michel et al.'s head importance: the mean over batches of |∂L/∂ξ| (their code takes the
/// absolute value of each batch's gradient), each layer's heads then divided by their L2 norm; MLPs get the
/// mean |∂L/∂ξ| unnormalised. `signed` true keeps the signed mean (the direction pruning follows).
public func maskImportance(
    model: BertModel, encodings: [Encoding], labels: [Int]?, masks: MaskValues, ablation: Ablation,
    batchSize: Int, signed: Bool = false, progress: ((Int) -> Void)? = nil
) throws -> ImportanceScores {
    var s = ImportanceScores(
        heads: [[Double]](repeating: [Double](repeating: 0, count: model.headCount), count: model.layerCount),
        mlps: [Double](repeating: 0, count: model.layerCount), loss: 0, batches: 0, examples: encodings.count)
    for start in stride(from: 0, to: encodings.count, by: max(1, batchSize)) {
        let idx = Array(start..<min(encodings.count, start + max(1, batchSize)))
        let g = try model.maskGradients(
            TokenBatch(idx.map { encodings[$0] }), masks: masks, ablation: ablation,
            objective: labels.map { l in .crossEntropy(labels: idx.map { l[$0] }) } ?? .kl)
        for l in 0..<model.layerCount {
            for h in 0..<model.headCount { s.heads[l][h] += signed ? g.heads[l][h] : abs(g.heads[l][h]) }
            s.mlps[l] += signed ? g.mlps[l] : abs(g.mlps[l])
        }
        s.loss += g.loss
        s.batches += 1
        progress?(start + idx.count)
    }
    let n = Double(max(1, s.batches))
    s.heads = s.heads.map { $0.map { $0 / n } }
    s.mlps = s.mlps.map { $0 / n }
    s.loss /= n
    if !signed {
        s.heads = s.heads.map { row in
            let norm = row.reduce(0) { $0 + $1 * $1 }.squareRoot()
            return norm > 0 ? row.map { $0 / norm } : row
        }
    }
    return s
}
