// CRC-32 (IEEE 802.3, the polynomial of zip and of the store's blocks), slicing-by-8: eight table lookups
// per 8 bytes instead of one per byte, so checking every stored entry of a bert-base .bin (440 MB) costs a
// fraction of a second.

private let crcTables: [[UInt32]] = {
    var t = [[UInt32]](repeating: [UInt32](repeating: 0, count: 256), count: 8)
    for i in 0..<256 {
        var c = UInt32(i)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        t[0][i] = c
    }
    for i in 0..<256 { for k in 1..<8 { t[k][i] = t[0][Int(t[k - 1][i] & 0xFF)] ^ (t[k - 1][i] >> 8) } }
    return t
}()

/// CRC-32 of `count` bytes at `p`.
public func crc32(_ p: UnsafeRawPointer, count: Int) -> UInt32 {
    let t0 = crcTables[0]
    let t1 = crcTables[1]
    let t2 = crcTables[2]
    let t3 = crcTables[3]
    let t4 = crcTables[4]
    let t5 = crcTables[5]
    let t6 = crcTables[6]
    let t7 = crcTables[7]
    var crc: UInt32 = 0xFFFF_FFFF
    var i = 0
    while i + 8 <= count {
        let lo = p.loadUnaligned(fromByteOffset: i, as: UInt32.self).littleEndian ^ crc
        let hi = p.loadUnaligned(fromByteOffset: i + 4, as: UInt32.self).littleEndian
        crc =
            t7[Int(lo & 0xFF)] ^ t6[Int((lo >> 8) & 0xFF)] ^ t5[Int((lo >> 16) & 0xFF)] ^ t4[Int(lo >> 24)]
            ^ t3[Int(hi & 0xFF)] ^ t2[Int((hi >> 8) & 0xFF)] ^ t1[Int((hi >> 16) & 0xFF)] ^ t0[Int(hi >> 24)]
        i += 8
    }
    while i < count {
        crc = t0[Int((crc ^ UInt32(p.load(fromByteOffset: i, as: UInt8.self))) & 0xFF)] ^ (crc >> 8)
        i += 1
    }
    return crc ^ 0xFFFF_FFFF
}

public func crc32(_ data: [UInt8]) -> UInt32 {
    data.withUnsafeBytes { crc32($0.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!, count: $0.count) }
}
