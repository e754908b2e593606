// What the training loops share: torch.optim.AdamW's update and the linear warm-up/decay schedule.
// Pruning keeps its few hundred log α in Double, fine-tuning its millions of weights in Float; both run
// this one update.
import Foundation

/// AdamW's constants and step count. `step` updates one parameter vector (and its two moments).
public struct AdamW: Sendable, Codable {
    public var beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weightDecay: Double
    /// Steps taken so far (bias correction uses t after the increment).
    public var t = 0

    public init(weightDecay: Double) { self.weightDecay = weightDecay }

    /// Starts the next step; returns the bias corrections 1 − β1ᵗ, 1 − β2ᵗ.
    public mutating func nextStep() -> (c1: Double, c2: Double) {
        t += 1
        return (1 - pow(beta1, Double(t)), 1 - pow(beta2, Double(t)))
    }

    /// torch.optim.AdamW for one value: decoupled weight decay (when `decay`), then the Adam update with
    /// bias-corrected moments, all in T's precision. Inlinable so that callers in other modules get it
    /// specialised for their T (unspecialised, every operation is a protocol call: 2× fine-tuning time).
    @inlinable @inline(__always)
    public func update<T: BinaryFloatingPoint>(
        _ p: inout T, m: inout T, v: inout T, grad g: T, lr: T, c1: T, c2: T, decay: Bool = true
    ) {
        let b1 = T(beta1)
        let b2 = T(beta2)
        if decay { p -= lr * T(weightDecay) * p }
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        p -= lr * (m / c1) / ((v / c2).squareRoot() + T(eps))
    }
}

/// AdamW with its moments for a vector of Double parameters (pruning's log α and λ).
public struct AdamWState: Sendable, Codable {
    public var optimizer: AdamW
    var m: [Double], v: [Double]

    public init(count: Int, weightDecay: Double = 0.01) {
        optimizer = AdamW(weightDecay: weightDecay)
        m = [Double](repeating: 0, count: count)
        v = m
    }

    /// Whether a state read back from a file can continue a run over `count` values: one finite first and a
    /// non-negative finite second moment per value, a step count in range, the hyper-parameters in theirs.
    public func isValid(count: Int, maxSteps: Int) -> Bool {
        let o = optimizer
        return m.count == count && v.count == count && m.allSatisfy(\.isFinite)
            && v.allSatisfy { $0.isFinite && $0 >= 0 }
            && (0...maxSteps).contains(o.t) && (0..<1).contains(o.beta1) && (0..<1).contains(o.beta2)
            && o.eps.isFinite && o.eps > 0 && o.weightDecay.isFinite && o.weightDecay >= 0
    }

    public mutating func step(_ p: inout [Double], grad g: [Double], lr: Double) {
        let (c1, c2) = optimizer.nextStep()
        for i in p.indices { optimizer.update(&p[i], m: &m[i], v: &v[i], grad: g[i], lr: lr, c1: c1, c2: c2) }
    }
}

/// torch's clip_grad_norm_: the factor max/(norm + 1e-6) a gradient of global L2 norm `norm` is scaled by when
/// that factor is below 1; nil when nothing is clipped (`maxNorm` 0 turns clipping off). Pruning and
/// fine-tuning both clip with it.
public func clipScale(norm: Double, maxNorm: Double) -> Double? {
    let coefficient = maxNorm / (norm + 1e-6)
    return maxNorm > 0 && coefficient < 1 ? coefficient : nil
}

/// transformers' get_linear_schedule_with_warmup: step/warmup during the warm-up (so the first optimizer
/// step, step 0, runs at factor 0), then linear decay to 0 at `total`.
public func learningRateFactor(step: Int, warmup: Int, total: Int) -> Double {
    if step < warmup { return Double(step) / Double(warmup) }
    return max(0, Double(total - step) / Double(max(1, total - warmup)))
}

/// Clips the global L2 norm of every gradient buffer together (the norm accumulated in Double) to `maxNorm`, as
/// torch's clip_grad_norm_ does: scale max/(norm + 1e-6) when that is below 1; 0 never clips. Returns the norm
/// before clipping. Pruning (log α and λ, Double) and fine-tuning (every weight, Float) both clip with it.
/// Inlinable so that callers in other modules get it specialised for their T: unspecialised, every element is a
/// protocol call, and fine-tuning's 22M weights take seconds a step.
@discardableResult @inlinable
public func clipGlobalNorm<T: BinaryFloatingPoint>(_ buffers: [UnsafeMutableBufferPointer<T>], maxNorm: Double)
    -> Double
{
    // Each buffer's sum of squares, then their sum.
    var total = 0.0
    for b in buffers {
        var sum = 0.0
        for i in b.indices {
            let x = Double(b[i])
            sum += x * x
        }
        total += sum
    }
    let norm = total.squareRoot()
    if let scale = clipScale(norm: norm, maxNorm: maxNorm) {
        let s = T(scale)
        for b in buffers { for i in b.indices { b[i] *= s } }
    }
    return norm
}
