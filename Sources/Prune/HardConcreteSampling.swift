// Training-time samples of the hard-concrete gates (Louizos et al. 2018; the constants in Model/HardConcrete.swift)
// and their reparameterised derivative, as Heuristic-Core's l0.py draws them.
import Foundation
import Model

extension HardConcrete {
    /// A training-time sample: clamp((r − l)·σ((log u − log(1−u) + log α)/T) + l, 0, 1), u ∈ (eps, 1−eps).
    public static func sample(logAlpha: Float, u: Float) -> Float {
        sampleWithDerivative(logAlpha: Double(logAlpha), u: Double(u)).z
    }

    /// The sample and its reparameterised derivative dz/dlog α = (r − l)·σ'(·)/T, zero where the clamp is active.
    public static func sampleWithDerivative(logAlpha: Double, u: Double) -> (z: Float, dzda: Double) {
        let uu = min(max(u, eps), 1 - eps)
        let s = sigmoid((log(uu) - log(1 - uu) + logAlpha) / temperature)
        let stretched = s * (limitRight - limitLeft) + limitLeft
        let dzda = stretched > 0 && stretched < 1 ? (limitRight - limitLeft) * s * (1 - s) / temperature : 0
        return (Float(min(1, max(0, stretched))), dzda)
    }
}
