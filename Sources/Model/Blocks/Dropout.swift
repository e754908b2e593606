// BERT's hidden dropout, inverted: a kept value is scaled by 1/(1 − p). Masks are drawn as multipliers
// (0 or 1/(1 − p)) so that the backward multiplies by the same buffer.
import Kernels

/// Multipliers for `count` values with drop probability p from `rng`, in a buffer of `arena`; nil when p is 0.
package func dropoutMultipliers(_ count: Int, p: Float, rng: inout SplitMix64, arena: ScratchArena)
    -> UnsafeMutablePointer<Float>?
{
    guard p > 0 else { return nil }
    let m = arena.take(count)
    let scale = 1 / (1 - p)
    for i in 0..<count { m[i] = rng.uniform() < Double(p) ? 0 : scale }
    return m
}

/// x ← x ⊙ m (nothing when m is nil).
package func multiply(_ x: UnsafeMutablePointer<Float>, by m: UnsafePointer<Float>?, count: Int) {
    guard let m else { return }
    for i in 0..<count { x[i] *= m[i] }
}
