// Reproducible random numbers shared by pruning (gate noise, shuffles) and fine-tuning (init, dropout).
import Foundation

/// SplitMix64: small, fast, reproducible across machines.
public struct SplitMix64: Sendable, Codable {
    /// The whole generator state (saved in checkpoints to resume a run exactly).
    public var state: UInt64
    public init(seed: UInt64) { state = seed }
    /// What the state advances by at each draw (also what a seed is offset by to start a stream derived from it).
    public static let gamma: UInt64 = 0x9E37_79B9_7F4A_7C15
    public mutating func next() -> UInt64 {
        state &+= SplitMix64.gamma
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    public mutating func uniform() -> Double { Double(next() >> 11) / Double(1 << 53) }
    /// The generator `count` draws later: the state only advances by a constant per draw, so draw i of a stream
    /// can be computed without the draws before it (parallel fills, skipped blocks).
    public func advanced(by count: Int) -> SplitMix64 {
        SplitMix64(seed: state &+ SplitMix64.gamma &* UInt64(truncatingIfNeeded: count))
    }
    public mutating func normal() -> Double {
        let u1 = max(1e-300, uniform())
        let u2 = uniform()
        return (-2 * log(u1)).squareRoot() * cos(2 * .pi * u2)
    }
}

extension SplitMix64 {
    /// out[j] = uniform() of this stream's draw j < p ? 0 : scale for j < count — the values a loop of `uniform()`
    /// gives, eight draws at a time in 64-bit lanes (`EightDraws`). The generator is not advanced.
    public func fillDropout(_ out: UnsafeMutablePointer<Float>, count: Int, p: Double, scale: Float) {
        let kept = SIMD8<Double>(repeating: Double(scale))
        var draws = EightDraws(self, from: 0, p: p)
        var j = 0
        while j + 8 <= count {
            let v = kept.replacing(with: 0, where: draws.dropped())
            UnsafeMutableRawPointer(out + j).storeBytes(of: narrow(v), as: SIMD8<Float>.self)
            j += 8
        }
        var g = advanced(by: j)
        while j < count {
            out[j] = g.uniform() < p ? 0 : scale
            j += 1
        }
    }

    /// A stream's draws eight at a time, from draw `i` on, as `uniform() < p` compares them: `uniform()` is
    /// `next() >> 11` divided by 2⁵³ (exact), so it is below p exactly when that integer is below ⌈p·2⁵³⌉.
    struct EightDraws {
        var states: SIMD8<UInt64>
        let threshold: SIMD8<UInt64>

        @inline(__always)
        init(_ g: SplitMix64, from i: Int, p: Double) {
            let first = g.advanced(by: i).state
            states = SIMD8(repeating: first) &+ SIMD8(1, 2, 3, 4, 5, 6, 7, 8) &* SplitMix64.gamma
            threshold = SIMD8(repeating: UInt64((p * 9_007_199_254_740_992).rounded(.up)))
        }

        /// Which of the next eight draws are below p (dropped); then the eight after.
        @inline(__always)
        mutating func dropped() -> SIMDMask<SIMD8<Int64>> {
            // `next()`'s output function on eight states (one 64-bit multiply instruction a step).
            var z = (states ^ (states &>> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z &>> 27)) &* 0x94D0_49BB_1331_11EB
            z ^= z &>> 31
            states &+= SIMD8(repeating: SplitMix64.gamma &* 8)
            return z &>> 11 .< threshold
        }
    }

    /// Fisher–Yates shuffle in place, from the last element down (the order every hcore loop has used).
    public mutating func shuffle<T>(_ a: inout [T]) {
        for i in stride(from: a.count - 1, to: 0, by: -1) { a.swapAt(i, Int(next() % UInt64(i + 1))) }
    }
}
