// Attention-probability dropout kept as one bit per probability. Its multipliers are 0 or 1/(1 − p), so a bit says
// all a Float multiplier said: a pruning step at B·T = 4,096 draws, writes and reads back 25 MB of them per MiniLM
// layer as Floats (three passes over memory), 0.8 MB as bits. A kernel turns sixteen bits into the sixteen
// multipliers the Float buffer held, so every product is the one it was.
import Foundation

/// Keep bits of a probability layout (`attentionProbOffsets`): value i is kept when bit i % 8 of byte i / 8 is set,
/// and then scaled by `scale`, else 0. `start` offsets every index (one head's block of a layer's layout).
/// The bytes are readable three past the last bit's byte (`DropoutBits.byteCount`).
public struct DropoutBits: @unchecked Sendable {
    public let bytes: UnsafeRawPointer
    public let scale: Float
    public let start: Int

    public init(bytes: UnsafeRawPointer, scale: Float, start: Int = 0) {
        (self.bytes, self.scale, self.start) = (bytes, scale, start)
    }

    /// Bytes a buffer of `count` bits needs (with the three a sixteen-bit read may pass the last).
    public static func byteCount(_ count: Int) -> Int { (count + 7) / 8 + 3 }

    /// The same bits from index `offset` on.
    public func advanced(by offset: Int) -> DropoutBits {
        DropoutBits(bytes: bytes, scale: scale, start: start + offset)
    }

    /// Value i's multiplier: `scale` or 0.
    @inline(__always)
    public func multiplier(_ i: Int) -> Float {
        let j = start + i
        return bytes.load(fromByteOffset: j >> 3, as: UInt8.self) >> UInt8(j & 7) & 1 == 1 ? scale : 0
    }

    /// The multipliers of values i ..< i + 16.
    @inline(__always)
    public func multipliers16(_ i: Int) -> Vec16 {
        let j = start + i
        let word = bytes.loadUnaligned(fromByteOffset: j >> 3, as: UInt32.self) >> UInt32(j & 7)
        let lanes = SIMD16<UInt32>(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768)
        // Spelled `.== lanes` (not `.!= 0`): this form compiles to one mask-register move, the other to a loop.
        let kept = (SIMD16<UInt32>(repeating: word) & lanes) .== lanes
        return Vec16(repeating: 0).replacing(with: scale, where: kept)
    }

    /// x[0 ..< count] ⊙ the multipliers of values i ..< i + count, in place.
    @inline(__always)
    public func multiply(_ x: UnsafeMutablePointer<Float>, from i: Int, count: Int) {
        let raw = UnsafeMutableRawPointer(x)
        var j = 0
        while j + 16 <= count {
            let v = raw.loadUnaligned(fromByteOffset: j * 4, as: Vec16.self) * multipliers16(i + j)
            raw.storeBytes(of: v, toByteOffset: j * 4, as: Vec16.self)
            j += 16
        }
        while j < count {
            x[j] *= multiplier(i + j)
            j += 1
        }
    }
}

extension SplitMix64 {
    /// Keep bits of this stream's draws: bit i is set when draw i's uniform() ≥ p (`fillDropout`'s multiplier is
    /// `scale`), for every i of the whole bytes `bytes` (bits 8·b ..< 8·b + 8 of each byte b). The generator is not
    /// advanced.
    public func fillDropoutBits(_ out: UnsafeMutableRawPointer, bytes: Range<Int>, p: Double) {
        let lanes = SIMD8<UInt64>(1, 2, 4, 8, 16, 32, 64, 128)
        var draws = EightDraws(self, from: bytes.lowerBound * 8, p: p)
        for b in bytes {
            let kept = lanes.replacing(with: 0, where: draws.dropped())
            out.storeBytes(of: UInt8(truncatingIfNeeded: kept.wrappedSum()), toByteOffset: b, as: UInt8.self)
        }
    }
}
