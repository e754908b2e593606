// BERT's hidden dropout, inverted: a kept value is scaled by 1/(1 − p). Masks are drawn as multipliers
// (0 or 1/(1 − p)) so that the backward multiplies by the same buffer; the attention probabilities' (32× more values
// at T = 128) as one keep bit each (Kernels/DropoutBits.swift).
import Kernels

/// Multipliers for `count` values with drop probability p from `rng`, in a buffer of `arena`; nil when p is 0.
/// Value i is the stream's i-th draw, computed in parallel chunks (SplitMix64.advanced); `rng` ends past all
/// `count` draws. `only`: the ranges a pass will read (the others are left unset, their draws skipped).
package func dropoutMultipliers(
    _ count: Int, p: Float, rng: inout SplitMix64, arena: ScratchArena, only: [Range<Int>]? = nil,
    pool: ThreadPool = .shared
) -> UnsafeMutablePointer<Float>? {
    guard p > 0 else { return nil }
    let m = arena.take(count)
    let (scale, threshold) = (1 / (1 - p), Double(p))
    let start = rng
    let pieces = tasks(covering: readRanges(only, count: count), chunk: 1 << 16)
    let address = UInt(bitPattern: m)
    pool.parallelFor(pieces.count) { i in
        let out = UnsafeMutablePointer<Float>(bitPattern: address)!
        let piece = pieces[i]
        start.advanced(by: piece.lowerBound).fillDropout(
            out + piece.lowerBound, count: piece.count, p: threshold, scale: scale)
    }
    rng = start.advanced(by: count)
    return m
}

/// The keep bits of `count` attention probabilities with drop probability p from `rng`, in a buffer of `arena`;
/// nil when p is 0. Bit i is set exactly when `dropoutMultipliers` would give value i its 1/(1 − p): the same
/// stream, `rng` ending past all `count` draws. `only`: the ranges a pass will read; the whole bytes covering them
/// are drawn, the others left unset.
package func dropoutBits(
    _ count: Int, p: Float, rng: inout SplitMix64, arena: ScratchArena, only: [Range<Int>]? = nil,
    pool: ThreadPool = .shared
) -> DropoutBits? {
    guard p > 0 else { return nil }
    let raw = UnsafeMutableRawPointer(arena.take((DropoutBits.byteCount(count) + 3) / 4))
    let start = rng
    let bytes = readRanges(only, count: count).map { ($0.lowerBound / 8)..<(($0.upperBound + 7) / 8) }
    let pieces = tasks(covering: bytes, chunk: 1 << 13)  // 65,536 draws a task, as the multipliers'
    let address = UInt(bitPattern: raw)
    pool.parallelFor(pieces.count) { i in
        start.fillDropoutBits(UnsafeMutableRawPointer(bitPattern: address)!, bytes: pieces[i], p: Double(p))
    }
    rng = start.advanced(by: count)
    return DropoutBits(bytes: UnsafeRawPointer(raw), scale: 1 / (1 - p))
}

/// The non-empty ranges of `only` (every value when nil), each checked to lie in 0..<count.
func readRanges(_ only: [Range<Int>]?, count: Int) -> [Range<Int>] {
    let ranges = (only ?? [0..<count]).filter { !$0.isEmpty }
    for r in ranges { precondition(r.lowerBound >= 0 && r.upperBound <= count, "a dropout range outside the buffer") }
    return ranges
}

/// The parallel fills' tasks: the ranges merged where they overlap or touch (no two tasks write one value or one
/// byte), cut into pieces of at most `chunk`.
func tasks(covering ranges: [Range<Int>], chunk: Int) -> [Range<Int>] {
    var merged: [Range<Int>] = []
    for r in ranges.sorted(by: { $0.lowerBound < $1.lowerBound }) {
        if let last = merged.last, r.lowerBound <= last.upperBound {
            merged[merged.count - 1] = last.lowerBound..<max(last.upperBound, r.upperBound)
        } else {
            merged.append(r)
        }
    }
    return merged.flatMap { r in
        stride(from: r.lowerBound, to: r.upperBound, by: chunk).map { $0..<min(r.upperBound, $0 + chunk) }
    }
}

/// x ← x ⊙ m (nothing when m is nil).
package func multiply(_ x: UnsafeMutablePointer<Float>, by m: UnsafePointer<Float>?, count: Int) {
    guard let m else { return }
    multiplyVectors(x, m, count: count)
}
