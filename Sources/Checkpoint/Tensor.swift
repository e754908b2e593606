// What every checkpoint reader offers: named tensors with a dtype and shape, converted to fp32 on demand.

public enum DType: String, Sendable, CaseIterable {
    case f32 = "F32"
    case f16 = "F16"
    case bf16 = "BF16"
    case f64 = "F64"
    case i64 = "I64"
    case i32 = "I32"
    case i16 = "I16"
    case i8 = "I8"
    case u8 = "U8"
    case bool = "BOOL"

    public var size: Int {
        switch self {
        case .f64, .i64: return 8
        case .f32, .i32: return 4
        case .f16, .bf16, .i16: return 2
        case .i8, .u8, .bool: return 1
        }
    }

    public var isFloating: Bool { self == .f32 || self == .f16 || self == .bf16 || self == .f64 }
}

public struct TensorInfo: Sendable, Equatable {
    public let name: String
    public let dtype: DType
    public let shape: [Int]
    /// Absolute byte range of the contiguous row-major data inside the backing file.
    public let byteRange: Range<Int>

    public var elementCount: Int { shape.reduce(1, *) }

    public init(name: String, dtype: DType, shape: [Int], byteRange: Range<Int>) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.byteRange = byteRange
    }
}

/// A set of named tensors backed by a file.
public protocol TensorSource: AnyObject {
    var path: String { get }
    var names: [String] { get }
    func info(_ name: String) -> TensorInfo?
    /// The tensor as fp32 (F32 copied, F16/BF16/F64 converted). Throws for non-floating dtypes.
    func floats(_ name: String) throws -> [Float]
    /// Integer tensors (I64/I32/…) as Int.
    func ints(_ name: String) throws -> [Int]
    /// Drops the tensor's pages from memory once it has been packed elsewhere.
    func release(_ name: String)
}

/// A tensor source whose tensors are byte ranges of one memory-mapped file (safetensors, torch zip).
public protocol MappedTensorSource: TensorSource {
    var file: MappedFile { get }
}

extension MappedTensorSource {
    public func floats(_ name: String) throws -> [Float] {
        guard let i = info(name) else { throw CheckpointError.missingTensor(path: path, name: name) }
        return try convertFloats(file, i)
    }

    public func ints(_ name: String) throws -> [Int] {
        guard let i = info(name) else { throw CheckpointError.missingTensor(path: path, name: name) }
        return try convertInts(file, i)
    }

    public func release(_ name: String) {
        if let i = info(name) { file.release(i.byteRange) }
    }
}

/// Shared conversion from raw little-endian bytes of a backing file.
func convertFloats(_ file: MappedFile, _ info: TensorInfo) throws -> [Float] {
    let n = info.elementCount
    let base = file.bytes + info.byteRange.lowerBound
    switch info.dtype {
    case .f32:
        return [Float](unsafeUninitializedCapacity: n) { buf, count in
            UnsafeMutableRawPointer(buf.baseAddress!).copyMemory(from: base, byteCount: n * 4)
            count = n
        }
    case .f16:
        return (0..<n).map { halfToFloat(base.loadUnaligned(fromByteOffset: 2 * $0, as: UInt16.self)) }
    case .bf16:
        return (0..<n).map {
            Float(bitPattern: UInt32(base.loadUnaligned(fromByteOffset: 2 * $0, as: UInt16.self)) << 16)
        }
    case .f64:
        return (0..<n).map { Float(base.loadUnaligned(fromByteOffset: 8 * $0, as: Double.self)) }
    default:
        throw CheckpointError.unsupported(
            path: file.path, reason: "tensor '\(info.name)' has dtype \(info.dtype.rawValue), expected a floating type")
    }
}

func convertInts(_ file: MappedFile, _ info: TensorInfo) throws -> [Int] {
    let n = info.elementCount
    let base = file.bytes + info.byteRange.lowerBound
    switch info.dtype {
    case .i64: return (0..<n).map { Int(base.loadUnaligned(fromByteOffset: 8 * $0, as: Int64.self)) }
    case .i32: return (0..<n).map { Int(base.loadUnaligned(fromByteOffset: 4 * $0, as: Int32.self)) }
    case .i16: return (0..<n).map { Int(base.loadUnaligned(fromByteOffset: 2 * $0, as: Int16.self)) }
    case .i8: return (0..<n).map { Int(base.loadUnaligned(fromByteOffset: $0, as: Int8.self)) }
    case .u8, .bool: return (0..<n).map { Int(base.loadUnaligned(fromByteOffset: $0, as: UInt8.self)) }
    default:
        throw CheckpointError.unsupported(
            path: file.path, reason: "tensor '\(info.name)' has dtype \(info.dtype.rawValue), expected an integer type")
    }
}

/// IEEE half → single, including subnormals, infinities and NaN.
public func halfToFloat(_ h: UInt16) -> Float {
    let sign = UInt32(h & 0x8000) << 16
    let exponent = Int((h >> 10) & 0x1F)
    var mantissa = UInt32(h & 0x3FF)
    if exponent == 0 {
        if mantissa == 0 { return Float(bitPattern: sign) }
        var e = -1
        repeat {
            e += 1
            mantissa <<= 1
        } while mantissa & 0x400 == 0
        mantissa &= 0x3FF
        return Float(bitPattern: sign | UInt32(127 - 15 - e) << 23 | mantissa << 13)
    }
    if exponent == 31 { return Float(bitPattern: sign | 0x7F80_0000 | mantissa << 13) }
    return Float(bitPattern: sign | UInt32(exponent - 15 + 127) << 23 | mantissa << 13)
}
