// Hard-concrete gates (Louizos et al. 2018) with the constants of Heuristic-Core's l0.py, and the deterministic
// rule that turns trained log α into an evaluation mask (pruning's sampling: Prune/HardConcreteSampling.swift):
// stretch limits (l, r) = (−0.1, 1.1), temperature T = 2/3, eps = 1e-6, deterministic factor 0.8.
import Foundation

public enum HardConcrete {
    public static let limitLeft = -0.1
    public static let limitRight = 1.1
    public static let temperature = 2.0 / 3.0
    public static let eps = 1e-6
    public static let factor = 0.8

    /// P(gate = 0) = σ(T·log(x/(1−x)) − log α) with x = (0 − l)/(r − l), clamped to [eps, 1−eps].
    public static func probabilityZero(logAlpha: Float) -> Double {
        let x = (0 - limitLeft) / (limitRight - limitLeft)
        return min(1 - eps, max(eps, sigmoid(temperature * log(x / (1 - x)) - Double(logAlpha))))
    }

    /// The expected number of kept gates, Σ (1 − P(gate = 0)) — the L0 norm the sparsity target uses.
    public static func expectedKept(_ logAlpha: [Float]) -> Double {
        logAlpha.reduce(0) { $0 + 1 - probabilityZero(logAlpha: $1) }
    }

    /// The deterministic evaluation mask over one group of gates: k = round(N − Σ(1 − q)) gates (the
    /// expected number of zeros) with the smallest soft scores σ(log α / T · 0.8) become 0; the others keep
    /// their soft score. Heuristic-Core applies it per module (each layer's head vector, each MLP's
    /// single gate); the golden files (Tests/Fixtures/golden) apply it to all units at once. Pass `threshold` for binary masks.
    public static func deterministic(_ logAlpha: [Float], threshold: Float? = nil) -> (mask: [Float], zeros: Int) {
        let n = logAlpha.count
        let kept = expectedKept(logAlpha)
        let k = max(0, min(n, Int((Double(n) - kept).rounded(.toNearestOrEven))))
        var soft = logAlpha.map { Float(sigmoid(Double($0) / temperature * factor)) }
        let order = soft.indices.sorted { (soft[$0], $0) < (soft[$1], $1) }
        for i in order.prefix(k) { soft[i] = 0 }
        if let threshold { soft = soft.map { $0 > threshold ? 1 : 0 } }
        return (soft, k)
    }

    package static func sigmoid(_ x: Double) -> Double { 1 / (1 + exp(-x)) }
}
