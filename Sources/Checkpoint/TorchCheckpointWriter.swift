// Writes a state dict in torch.save's zip layout (<name>/data.pkl, <name>/data/<i>, <name>/version,
// <name>/byteorder), pickle protocol 2, stored entries with CRC-32, data 64-byte aligned — a file
// `torch.load(..., weights_only=True)` reads. Used to export for tools that only read .bin, and by the
// tests to build checkpoints (including pruned Heuristic-Core ones and hostile ones).

public struct TorchCheckpointWriter {
    public var archiveName = "archive"
    public private(set) var tensors: [(name: String, shape: [Int], dtype: DType, bytes: [UInt8])] = []

    public init() {}

    public mutating func add(_ name: String, shape: [Int], _ values: [Float]) {
        precondition(shape.reduce(1, *) == values.count)
        tensors.append((name, shape, .f32, values.withUnsafeBytes { Array($0) }))
    }

    public mutating func add(_ name: String, shape: [Int], int64 values: [Int]) {
        precondition(shape.reduce(1, *) == values.count)
        tensors.append((name, shape, .i64, values.map(Int64.init).withUnsafeBytes { Array($0) }))
    }

    /// The pickled state dict alone (for tests that tamper with it).
    public func pickle() -> [UInt8] {
        var p = PickleBuilder()
        p.op(0x80)
        p.byte(2)  // PROTO 2
        p.op(0x7D)  // EMPTY_DICT
        p.op(0x28)  // MARK
        for (i, t) in tensors.enumerated() {
            p.unicode(t.name)
            p.global("torch._utils", "_rebuild_tensor_v2")
            p.op(0x28)  // MARK (args)
            p.op(0x28)  // MARK (persistent id)
            p.unicode("storage")
            p.global("torch", t.dtype == .i64 ? "LongStorage" : "FloatStorage")
            p.unicode(String(i))
            p.unicode("cpu")
            p.int(t.shape.reduce(1, *))
            p.op(0x74)  // TUPLE
            p.op(0x51)  // BINPERSID
            p.int(0)  // storage offset
            p.tuple(t.shape)
            var strides: [Int] = []
            var s = 1
            for d in t.shape.reversed() {
                strides.insert(s, at: 0)
                s *= d
            }
            p.tuple(strides)
            p.op(0x89)  // NEWFALSE (requires_grad)
            p.global("collections", "OrderedDict")
            p.op(0x29)  // EMPTY_TUPLE
            p.op(0x52)  // REDUCE → OrderedDict() (backward hooks)
            p.op(0x74)  // TUPLE (args)
            p.op(0x52)  // REDUCE → tensor
        }
        p.op(0x75)  // SETITEMS
        p.op(0x2E)  // STOP
        return p.bytes
    }

    /// The whole zip archive, optionally with a replacement data.pkl.
    public func serialized(pickleOverride: [UInt8]? = nil, omitPickle: Bool = false) -> [UInt8] {
        var zip = ZipBuilder()
        if !omitPickle { zip.add("\(archiveName)/data.pkl", pickleOverride ?? pickle()) }
        zip.add("\(archiveName)/byteorder", Array("little".utf8))
        for (i, t) in tensors.enumerated() { zip.add("\(archiveName)/data/\(i)", t.bytes) }
        zip.add("\(archiveName)/version", Array("3\n".utf8))
        return zip.finish()
    }

    public func write(to path: String) throws {
        try writeAtomically(serialized(), to: path)
    }
}

/// Pickle opcodes emitted by TorchCheckpointWriter.
public struct PickleBuilder {
    public var bytes: [UInt8] = []
    public init() {}
    public mutating func op(_ o: UInt8) { bytes.append(o) }
    public mutating func byte(_ b: UInt8) { bytes.append(b) }
    public mutating func unicode(_ s: String) {
        let u = Array(s.utf8)
        op(0x58)
        le(UInt64(u.count), 4)
        bytes += u
    }
    public mutating func global(_ module: String, _ name: String) {
        op(0x63)
        bytes += Array("\(module)\n\(name)\n".utf8)
    }
    public mutating func int(_ v: Int) {
        if v >= 0 && v < 256 {
            op(0x4B)
            byte(UInt8(v))
        } else if v >= 0 && v < 65536 {
            op(0x4D)
            le(UInt64(v), 2)
        } else if v >= Int(Int32.min) && v <= Int(Int32.max) {
            op(0x4A)
            le(UInt64(UInt32(bitPattern: Int32(v))), 4)
        } else {
            op(0x8A)
            byte(8)
            le(UInt64(bitPattern: Int64(v)), 8)
        }
    }
    public mutating func tuple(_ values: [Int]) {
        op(0x28)
        for v in values { int(v) }
        op(0x74)
    }
    mutating func le(_ v: UInt64, _ n: Int) { for i in 0..<n { bytes.append(UInt8((v >> (8 * UInt64(i))) & 0xFF)) } }
}

/// A stored-only zip writer with 64-byte aligned entry data (as torch.save aligns storages).
public struct ZipBuilder {
    var out: [UInt8] = []
    var central: [UInt8] = []
    var count = 0

    public init() {}

    public mutating func add(_ name: String, _ data: [UInt8]) {
        let nameBytes = Array(name.utf8)
        let offset = out.count
        // Pad the local header's extra field so the data starts on a 64-byte boundary.
        var pad = (64 - (offset + 30 + nameBytes.count + 4) % 64) % 64
        let extraLength = 4 + pad
        let crc = crc32(data)
        out += le32(0x0403_4B50) + le16(20) + le16(0) + le16(0) + le16(0) + le16(0)
        out += le32(crc) + le32(UInt32(data.count)) + le32(UInt32(data.count))
        out += le16(UInt16(nameBytes.count)) + le16(UInt16(extraLength))
        out += nameBytes
        out += le16(0x4246) + le16(UInt16(pad))  // "FB" padding field, as torch writes
        while pad > 0 {
            out.append(0x5A)
            pad -= 1
        }
        out += data
        central += le32(0x0201_4B50) + le16(20) + le16(20) + le16(0) + le16(0) + le16(0) + le16(0)
        central += le32(crc) + le32(UInt32(data.count)) + le32(UInt32(data.count))
        central +=
            le16(UInt16(nameBytes.count)) + le16(0) + le16(0) + le16(0) + le16(0) + le32(0) + le32(UInt32(offset))
        central += nameBytes
        count += 1
    }

    public mutating func finish() -> [UInt8] {
        let cdOffset = out.count
        var result = out + central
        result += le32(0x0605_4B50) + le16(0) + le16(0) + le16(UInt16(count)) + le16(UInt16(count))
        result += le32(UInt32(central.count)) + le32(UInt32(cdOffset)) + le16(0)
        return result
    }

    func le16(_ v: UInt16) -> [UInt8] { [UInt8(v & 0xFF), UInt8(v >> 8)] }
    func le32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8((v >> (8 * UInt32($0))) & 0xFF) } }
}
