// A content fingerprint of model weights: 64-bit, over tensor names, shapes and fp32 values, independent
// of file format (safetensors and .bin of the same weights agree) and of tensor order in the file.
// Used to refuse activations and stores computed for another model.

public struct Fingerprinter {
    private var h: UInt64 = 0x243F_6A88_85A3_08D3

    public init() {}

    @inline(__always)
    private mutating func mix(_ v: UInt64) {
        h = (h ^ v) &* 0x9E37_79B9_7F4A_7C15
        h ^= h >> 29
    }

    public mutating func add(name: String, shape: [Int], values: UnsafeBufferPointer<Float>) {
        for b in name.utf8 { mix(UInt64(b)) }
        for d in shape { mix(UInt64(bitPattern: Int64(d))) }
        // Lanes of 4 independent accumulators keep this memory-bound rather than latency-bound.
        var a0: UInt64 = 1
        var a1: UInt64 = 2
        var a2: UInt64 = 3
        var a3: UInt64 = 4
        let raw = UnsafeRawBufferPointer(values)
        let words = values.count / 2
        var i = 0
        while i + 4 <= words {
            a0 = (a0 ^ raw.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self)) &* 0xFF51_AFD7_ED55_8CCD
            a1 = (a1 ^ raw.loadUnaligned(fromByteOffset: i * 8 + 8, as: UInt64.self)) &* 0xC4CE_B9FE_1A85_EC53
            a2 = (a2 ^ raw.loadUnaligned(fromByteOffset: i * 8 + 16, as: UInt64.self)) &* 0xFF51_AFD7_ED55_8CCD
            a3 = (a3 ^ raw.loadUnaligned(fromByteOffset: i * 8 + 24, as: UInt64.self)) &* 0xC4CE_B9FE_1A85_EC53
            a0 ^= a0 >> 31
            a1 ^= a1 >> 31
            a2 ^= a2 >> 31
            a3 ^= a3 >> 31
            i += 4
        }
        mix(a0)
        mix(a1)
        mix(a2)
        mix(a3)
        for j in (i * 2)..<values.count { mix(UInt64(values[j].bitPattern)) }
    }

    public var value: UInt64 { h }
    /// "hc1-" + 16 hex digits.
    public var string: String {
        let hex = String(h, radix: 16)
        return "hc1-" + String(repeating: "0", count: 16 - hex.count) + hex
    }
}
