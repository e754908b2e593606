// safetensors: 8-byte little-endian header length N, N bytes of JSON {name: {dtype, shape, data_offsets},
// "__metadata__": {str: str}}, then the raw data. Offsets are relative to the end of the header.
// Everything is validated before a single tensor is read: the header fits in the file, the JSON is an
// object of well-formed entries, each byte range equals shape × dtype size, lies inside the data
// section, and no two ranges overlap.
import Foundation

public final class SafetensorsFile: MappedTensorSource {
    public let file: MappedFile
    public var path: String { file.path }
    public let metadata: [String: String]
    private let infos: [String: TensorInfo]
    public let names: [String]

    /// Largest header accepted (the format's own reference implementation uses 100 MB).
    public static let maxHeaderBytes = 100_000_000

    public convenience init(path: String) throws {
        try self.init(file: MappedFile(path: path))
    }

    public init(file: MappedFile) throws {
        self.file = file
        let path = file.path
        guard file.count >= 8 else {
            throw CheckpointError.malformed(
                path: path, offset: 0, reason: "file is \(file.count) bytes, shorter than the 8-byte header length")
        }
        let headerLength = file.uint(at: 0, size: 8)
        guard headerLength <= UInt64(file.count - 8) else {
            throw CheckpointError.malformed(
                path: path, offset: 0,
                reason: "header length \(headerLength) runs past the end of the \(file.count)-byte file")
        }
        guard headerLength <= UInt64(Self.maxHeaderBytes) else {
            throw CheckpointError.malformed(
                path: path, offset: 0, reason: "header length \(headerLength) exceeds \(Self.maxHeaderBytes) bytes")
        }
        let dataStart = 8 + Int(headerLength)
        let dataSize = file.count - dataStart
        let headerBytes = Data(bytes: file.bytes + 8, count: Int(headerLength))
        let json: Any
        do {
            json = try JSONSerialization.jsonObject(with: headerBytes)
        } catch {
            throw CheckpointError.malformed(path: path, offset: 8, reason: "header is not valid JSON")
        }
        guard let object = json as? [String: Any] else {
            throw CheckpointError.malformed(path: path, offset: 8, reason: "header is not a JSON object")
        }
        var metadata: [String: String] = [:]
        var infos: [String: TensorInfo] = [:]
        var ranges: [(Range<Int>, String)] = []
        for (name, value) in object {
            if name == "__metadata__" {
                guard let m = value as? [String: Any] else {
                    throw CheckpointError.malformed(path: path, offset: 8, reason: "__metadata__ is not an object")
                }
                for (k, v) in m {
                    guard let s = v as? String else {
                        throw CheckpointError.malformed(
                            path: path, offset: 8, reason: "__metadata__['\(k)'] is not a string")
                    }
                    metadata[k] = s
                }
                continue
            }
            let info = try Self.tensorInfo(name, value, path: path, dataStart: dataStart, dataSize: dataSize)
            infos[name] = info
            ranges.append((info.byteRange, name))
        }
        ranges.sort {
            $0.0.lowerBound < $1.0.lowerBound
                || ($0.0.lowerBound == $1.0.lowerBound && $0.0.upperBound < $1.0.upperBound)
        }
        // The tensors must tile the data section exactly, as the format's reference implementation demands:
        // a header length a few bytes off would otherwise shift every tensor into plausible garbage.
        var expected = dataStart
        for (i, (range, name)) in ranges.enumerated() {
            guard range.lowerBound == expected else {
                let what =
                    range.lowerBound < expected
                    ? "overlaps '\(ranges[i - 1].1)'"
                    : "starts \(range.lowerBound - expected) bytes after the previous tensor ends"
                throw CheckpointError.malformed(
                    path: path, offset: range.lowerBound,
                    reason: "tensor '\(name)' \(what); the data section must be tiled exactly")
            }
            expected = range.upperBound
        }
        guard expected == file.count else {
            throw CheckpointError.malformed(
                path: path, offset: expected,
                reason: "\(file.count - expected) bytes after the last tensor (the header length may be wrong)")
        }
        self.metadata = metadata
        self.infos = infos
        self.names = infos.keys.sorted()
    }

    public func info(_ name: String) -> TensorInfo? { infos[name] }

    /// One header entry {"dtype", "shape", "data_offsets"}, its byte count checked against its shape and its
    /// range against the data section (dataStart, dataSize bytes).
    static func tensorInfo(_ name: String, _ value: Any, path: String, dataStart: Int, dataSize: Int) throws
        -> TensorInfo
    {
        guard let entry = value as? [String: Any] else {
            throw CheckpointError.malformed(path: path, offset: 8, reason: "entry '\(name)' is not an object")
        }
        guard let dtypeName = entry["dtype"] as? String else {
            throw CheckpointError.malformed(path: path, offset: 8, reason: "entry '\(name)' has no dtype")
        }
        guard let dtype = DType(rawValue: dtypeName) else {
            throw CheckpointError.unsupported(
                path: path,
                reason:
                    "tensor '\(name)' has dtype '\(dtypeName)'; hcore reads \(DType.allCases.map(\.rawValue).joined(separator: ", "))"
            )
        }
        guard let shapeAny = entry["shape"] as? [Any], let shape = intArray(shapeAny), shape.allSatisfy({ $0 >= 0 })
        else {
            throw CheckpointError.malformed(
                path: path, offset: 8, reason: "entry '\(name)' has no valid shape (a list of non-negative integers)")
        }
        guard let offsetsAny = entry["data_offsets"] as? [Any], let offsets = intArray(offsetsAny), offsets.count == 2,
            offsets[0] >= 0, offsets[0] <= offsets[1]
        else {
            throw CheckpointError.malformed(
                path: path, offset: 8, reason: "entry '\(name)' has no valid data_offsets [begin, end]")
        }
        var bytes = dtype.size
        for d in shape {
            let (p, overflow) = bytes.multipliedReportingOverflow(by: d)
            if overflow {
                throw CheckpointError.malformed(
                    path: path, offset: 8, reason: "tensor '\(name)' shape \(shape) overflows")
            }
            bytes = p
        }
        guard offsets[1] - offsets[0] == bytes else {
            throw CheckpointError.malformed(
                path: path, offset: 8,
                reason:
                    "tensor '\(name)': data_offsets span \(offsets[1] - offsets[0]) bytes but shape \(shape) × \(dtype.rawValue) needs \(bytes)"
            )
        }
        guard offsets[1] <= dataSize else {
            throw CheckpointError.malformed(
                path: path, offset: dataStart + offsets[0],
                reason:
                    "tensor '\(name)' ends at data byte \(offsets[1]), past the end of the data section (\(dataSize) bytes)"
            )
        }
        return TensorInfo(
            name: name, dtype: dtype, shape: shape, byteRange: (dataStart + offsets[0])..<(dataStart + offsets[1]))
    }

}

private func intArray(_ a: [Any]) -> [Int]? {
    var out: [Int] = []
    for v in a {
        // JSONSerialization gives NSNumber; refuse non-integral and huge numbers.
        guard let n = v as? NSNumber else { return nil }
        let d = n.doubleValue
        guard d == d.rounded(), abs(d) < 9e15 else { return nil }
        out.append(n.intValue)
    }
    return out
}

/// Writes a safetensors file: tensors in the given order, data 8-byte aligned by padding the header with
/// spaces (as the reference writer does). Written to a temporary file and renamed, so a crash never
/// leaves a half-written file under the final name.
public struct SafetensorsWriter {
    public enum Payload {
        case f32([Float])
        case i64([Int])
    }
    public var tensors: [(name: String, shape: [Int], payload: Payload)] = []
    public var metadata: [String: String] = [:]

    public init() {}

    public mutating func add(_ name: String, shape: [Int], _ values: [Float]) {
        precondition(
            shape.reduce(1, *) == values.count, "shape \(shape) does not match \(values.count) values for \(name)")
        tensors.append((name, shape, .f32(values)))
    }

    public mutating func add(_ name: String, shape: [Int], ints values: [Int]) {
        precondition(shape.reduce(1, *) == values.count)
        tensors.append((name, shape, .i64(values)))
    }

    public func serialized() -> [UInt8] {
        var header = "{"
        var offset = 0
        var first = true
        if !metadata.isEmpty {
            header +=
                "\"__metadata__\":{"
                + metadata.keys.sorted().map { "\(jsonString($0)):\(jsonString(metadata[$0]!))" }.joined(separator: ",")
                + "}"
            first = false
        }
        for t in tensors {
            let (dtype, bytes): (String, Int) = {
                switch t.payload {
                case .f32(let v): return ("F32", v.count * 4)
                case .i64(let v): return ("I64", v.count * 8)
                }
            }()
            if !first { header += "," }
            first = false
            header +=
                "\(jsonString(t.name)):{\"dtype\":\"\(dtype)\",\"shape\":[\(t.shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(offset),\(offset + bytes)]}"
            offset += bytes
        }
        header += "}"
        var headerBytes = Array(header.utf8)
        while (8 + headerBytes.count) % 8 != 0 { headerBytes.append(0x20) }
        var out = [UInt8]()
        out.reserveCapacity(8 + headerBytes.count + offset)
        var n = UInt64(headerBytes.count)
        for _ in 0..<8 {
            out.append(UInt8(n & 0xFF))
            n >>= 8
        }
        out += headerBytes
        for t in tensors {
            switch t.payload {
            case .f32(let v): v.withUnsafeBytes { out += $0 }
            case .i64(let v): v.map(Int64.init).withUnsafeBytes { out += $0 }
            }
        }
        return out
    }

    public func write(to path: String) throws {
        try writeAtomically(serialized(), to: path)
    }
}

/// JSON string literal with the escapes JSON requires.
public func jsonString(_ s: String) -> String {
    var out = "\""
    for u in s.unicodeScalars {
        switch u {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        default:
            if u.value < 0x20 { out += String(format: "\\u%04x", u.value) } else { out.unicodeScalars.append(u) }
        }
    }
    return out + "\""
}
