// Reproducible random numbers shared by pruning (gate noise, shuffles) and fine-tuning (init, dropout).
import Foundation

/// SplitMix64: small, fast, reproducible across machines.
public struct SplitMix64: Sendable, Codable {
    /// The whole generator state (saved in checkpoints to resume a run exactly).
    public var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    public mutating func uniform() -> Double { Double(next() >> 11) / Double(1 << 53) }
    /// The generator `count` draws later: the state only advances by a constant per draw, so draw i of a stream
    /// can be computed without the draws before it (parallel fills, skipped blocks).
    public func advanced(by count: Int) -> SplitMix64 {
        SplitMix64(seed: state &+ 0x9E37_79B9_7F4A_7C15 &* UInt64(truncatingIfNeeded: count))
    }
    public mutating func normal() -> Double {
        let u1 = max(1e-300, uniform())
        let u2 = uniform()
        return (-2 * log(u1)).squareRoot() * cos(2 * .pi * u2)
    }
}

extension SplitMix64 {
    /// out[j] = uniform() of this stream's draw j < p ? 0 : scale for j < count — the values a loop of `uniform()`
    /// gives, eight draws at a time in 64-bit lanes (`uniform() < p` is `next() >> 11 < ⌈p·2⁵³⌉` exactly: the
    /// shift leaves an integer below 2⁵³ and the division by 2⁵³ is exact). The generator is not advanced.
    public func fillDropout(_ out: UnsafeMutablePointer<Float>, count: Int, p: Double, scale: Float) {
        let gamma: UInt64 = 0x9E37_79B9_7F4A_7C15
        let threshold = SIMD8<UInt64>(repeating: UInt64((p * 9_007_199_254_740_992).rounded(.up)))
        let kept = SIMD8<Double>(repeating: Double(scale))
        var states = SIMD8<UInt64>(repeating: state) &+ SIMD8<UInt64>(1, 2, 3, 4, 5, 6, 7, 8) &* gamma
        let step = SIMD8<UInt64>(repeating: gamma &* 8)
        var j = 0
        while j + 8 <= count {
            let z = SplitMix64.mix(states)
            let v = kept.replacing(with: 0, where: z &>> 11 .< threshold)
            UnsafeMutableRawPointer(out + j).storeBytes(of: narrow(v), as: SIMD8<Float>.self)
            states &+= step
            j += 8
        }
        var g = advanced(by: j)
        while j < count {
            out[j] = g.uniform() < p ? 0 : scale
            j += 1
        }
    }

    /// `next()`'s output function on eight states at once (one 64-bit multiply instruction per step).
    @inline(__always)
    static func mix(_ s: SIMD8<UInt64>) -> SIMD8<UInt64> {
        var z = (s ^ (s &>> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z &>> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z &>> 31)
    }

    /// Fisher–Yates shuffle in place, from the last element down (the order every hcore loop has used).
    public mutating func shuffle<T>(_ a: inout [T]) {
        for i in stride(from: a.count - 1, to: 0, by: -1) { a.swapAt(i, Int(next() % UInt64(i + 1))) }
    }
}
