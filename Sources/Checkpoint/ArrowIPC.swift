// Apache Arrow IPC, read-only and only as far as Hugging Face `datasets` folders need it: the stream format
// (`data-00000-of-00001.arrow` from `save_to_disk`, and the cache's files) and the file format (ARROW1 magic),
// flat columns of strings (Utf8, LargeUtf8), integers (8–64 bit), booleans and nulls, with their validity
// bitmaps. Anything else — dictionaries, compression, nested types, big-endian data — is refused by name.
//
// Layout (arrow/format/Message.fbs, Schema.fbs): a sequence of messages, each
//   [0xFFFFFFFF] [int32 metadata length] [flatbuffer Message, padded to 8] [body: bodyLength bytes]
// ended by a zero length. The first message is the Schema (its Fields: name, type); each RecordBatch gives
// per column a FieldNode (length, null count) and buffers (validity, offsets, data) as (offset, length) into
// its body. Every offset, length and count is checked against the bytes that hold it before use.
import Failures
import Foundation

public enum ArrowColumn: Equatable, Sendable {
    case strings([String?])
    case ints([Int?])
    case bools([Bool?])
    case nulls(Int)

    public var count: Int {
        switch self {
        case .strings(let v): return v.count
        case .ints(let v): return v.count
        case .bools(let v): return v.count
        case .nulls(let n): return n
        }
    }
}

/// A table read from Arrow IPC bytes: columns in schema order, each with `rows` values.
public struct ArrowTable: Sendable {
    public var names: [String]
    public var columns: [ArrowColumn]
    public var rows: Int
    public func column(_ name: String) -> ArrowColumn? { names.firstIndex(of: name).map { columns[$0] } }

    /// Parses an Arrow IPC stream or file.
    public init(bytes: [UInt8], path: String) throws {
        var reader = ArrowReader(bytes: bytes, path: path)
        (names, columns, rows) = try reader.read()
    }
}

/// A bounds-checked view of a flatbuffer inside `bytes[base..<end]`.
struct FlatBuffer {
    let bytes: [UInt8], base: Int, end: Int
    let fail: (String) -> Error

    func u8(_ p: Int) throws -> Int {
        guard p >= base, p < end else { throw fail("flatbuffer read past its end") }
        return Int(bytes[p])
    }
    /// Little-endian unsigned value of `width` bytes at p.
    func le(_ p: Int, _ width: Int) throws -> UInt64 {
        guard p >= base, width <= end - p else { throw fail("flatbuffer read past its end") }
        return littleEndian(bytes, p, width)
    }
    func u16(_ p: Int) throws -> Int { Int(try le(p, 2)) }
    func i32(_ p: Int) throws -> Int { Int(Int32(truncatingIfNeeded: try le(p, 4))) }
    func i64(_ p: Int) throws -> Int { Int(Int64(bitPattern: try le(p, 8))) }

    /// The root table's position.
    func root() throws -> Int { base + (try i32(base)) }
    /// The position of field `id` of the table at `t`, nil when absent (its default applies).
    func field(_ t: Int, _ id: Int) throws -> Int? {
        let vtable = t - (try i32(t))
        let size = try u16(vtable)
        guard 4 + 2 * id + 2 <= size else { return nil }
        let off = try u16(vtable + 4 + 2 * id)
        return off == 0 ? nil : t + off
    }
    /// Follows the uoffset stored at `p` (a table, vector or string).
    func deref(_ p: Int) throws -> Int {
        let o = try i32(p)
        guard o > 0 else { throw fail("flatbuffer offset \(o) is not forward") }
        return p + o
    }
    func table(_ t: Int, _ id: Int) throws -> Int? { try field(t, id).map(deref) }
    /// A vector's element count and first element's position.
    func vector(_ t: Int, _ id: Int) throws -> (count: Int, start: Int)? {
        guard let v = try table(t, id) else { return nil }
        let n = try i32(v)
        // Elements take at least a byte each (every read is checked again): a bound before any loop over them.
        guard n >= 0, n <= end - v - 4 else { throw fail("flatbuffer vector of \(n) elements does not fit") }
        return (n, v + 4)
    }
    func string(_ t: Int, _ id: Int) throws -> String? {
        guard let (n, start) = try vector(t, id) else { return nil }
        guard start + n <= end else { throw fail("flatbuffer string past its end") }
        return String(decoding: bytes[start..<(start + n)], as: UTF8.self)
    }
}

struct ArrowReader {
    enum Kind {
        case utf8(large: Bool)
        case int(bits: Int, signed: Bool)
        case bool, null
    }
    let bytes: [UInt8], path: String
    var pos = 0

    /// How many cells and how many bytes of text a file may expand into.
    var cellBudget: Int { bytes.count * 8 + 65_536 }
    let textBudget: TextBudget

    init(bytes: [UInt8], path: String) {
        (self.bytes, self.path) = (bytes, path)
        textBudget = TextBudget(left: 4 * bytes.count + (1 << 20))
    }

    func error(_ why: String) -> Error { ArrowError(path: path, offset: pos, reason: why) }

    mutating func read() throws -> ([String], [ArrowColumn], Int) {
        let magic = Array("ARROW1".utf8)
        if bytes.count >= 8, Array(bytes[0..<6]) == magic {  // file format: the stream follows the magic
            guard bytes.count >= 14, Array(bytes[(bytes.count - 6)...]) == magic else {
                throw error("the file format's closing ARROW1 is missing: the file is truncated")
            }
            pos = 8
        }
        guard let (schemaMeta, _) = try nextMessage() else { throw error("no schema message (an empty file?)") }
        let (names, kinds) = try schema(schemaMeta)
        var columns: [[ArrowValue]] = kinds.map { _ in [] }
        var rows = 0
        while let (meta, body) = try nextMessage() {
            let n = try recordBatch(meta, body: body, kinds: kinds, into: &columns)
            rows += n
        }
        let out = zip(kinds, columns).map { kind, values -> ArrowColumn in
            switch kind {
            case .utf8:
                return .strings(
                    values.map {
                        if case .string(let s) = $0 { return s }
                        return nil
                    })
            case .int:
                return .ints(
                    values.map {
                        if case .int(let i) = $0 { return i }
                        return nil
                    })
            case .bool:
                return .bools(
                    values.map {
                        if case .bool(let b) = $0 { return b }
                        return nil
                    })
            case .null: return .nulls(values.count)
            }
        }
        return (names, out, rows)
    }

    /// The next message's flatbuffer and body, nil at the end-of-stream marker (or the end of the bytes).
    mutating func nextMessage() throws -> (FlatBuffer, Range<Int>)? {
        guard pos + 4 <= bytes.count else {
            throw error("the stream ends without its end-of-stream marker: the file is truncated")
        }
        var length = Int(Int32(truncatingIfNeeded: littleEndian(bytes, pos, 4)))
        pos += 4
        if length == -1 {  // continuation marker, then the length
            guard pos + 4 <= bytes.count else { throw error("truncated after a continuation marker") }
            length = Int(Int32(truncatingIfNeeded: littleEndian(bytes, pos, 4)))
            pos += 4
        }
        if length == 0 { return nil }
        guard length > 0, length <= bytes.count - pos else {
            throw error("message metadata of \(length) bytes does not fit in the file")
        }
        let fb = FlatBuffer(
            bytes: bytes, base: pos, end: pos + length,
            fail: { [path, pos] in ArrowError(path: path, offset: pos, reason: $0) })
        let message = try fb.root()
        let version = try fb.field(message, 0).map { try fb.u16($0) } ?? 0
        guard version >= 3 else {
            throw error(
                "Arrow metadata version V\(version + 1) is older than V4 (rewrite the file with a recent pyarrow)")
        }
        let bodyLength = try fb.field(message, 3).map { try fb.i64($0) } ?? 0
        pos += length
        guard bodyLength >= 0, bodyLength <= bytes.count - pos else {
            throw error("message body of \(bodyLength) bytes does not fit in the file")
        }
        let body = pos..<(pos + bodyLength)
        pos += bodyLength
        return (fb, body)
    }

    func header(_ fb: FlatBuffer) throws -> (type: Int, table: Int) {
        let message = try fb.root()
        let type = try fb.field(message, 1).map { try fb.u8($0) } ?? 0
        guard let t = try fb.table(message, 2) else { throw error("message without a header") }
        return (type, t)
    }

    func schema(_ fb: FlatBuffer) throws -> ([String], [Kind]) {
        let (type, s) = try header(fb)
        guard type == 1 else { throw error("the first message is not a schema (header type \(type))") }
        if let e = try fb.field(s, 0), try fb.u16(e) != 0 { throw error("big-endian data is not supported") }
        guard let (n, start) = try fb.vector(s, 1) else { throw error("schema without fields") }
        var names: [String] = []
        var kinds: [Kind] = []
        for i in 0..<n {
            let f = try fb.deref(start + 4 * i)
            let name = try fb.string(f, 0) ?? "column\(i)"
            if try fb.table(f, 4) != nil {
                throw error("column '\(name)' is dictionary-encoded, which this reader does not support")
            }
            let typeType = try fb.field(f, 2).map { try fb.u8($0) } ?? 0
            switch typeType {
            case 1: kinds.append(.null)
            case 2:
                guard let t = try fb.table(f, 3) else { throw error("column '\(name)': Int without its parameters") }
                let bits = try fb.field(t, 0).map { try fb.i32($0) } ?? 0
                let signed = try fb.field(t, 1).map { try fb.u8($0) != 0 } ?? false
                guard [8, 16, 32, 64].contains(bits) else { throw error("column '\(name)': \(bits)-bit integers") }
                kinds.append(.int(bits: bits, signed: signed))
            case 5: kinds.append(.utf8(large: false))
            case 20: kinds.append(.utf8(large: true))
            case 6: kinds.append(.bool)
            default:
                let names = [
                    3: "floating point", 4: "binary", 7: "decimal", 8: "date", 9: "time", 10: "timestamp", 12: "list",
                    13: "struct", 14: "union", 15: "fixed-size binary",
                    16: "fixed-size list", 17: "map", 19: "large binary", 21: "large list", 24: "string view",
                ]
                throw error(
                    "column '\(name)' has Arrow type \(names[typeType] ?? "#\(typeType)"); this reader takes strings, integers and booleans"
                )
            }
            names.append(name)
        }
        return (names, kinds)
    }

    /// One record batch appended to `columns`; returns its row count.
    func recordBatch(_ fb: FlatBuffer, body: Range<Int>, kinds: [Kind], into columns: inout [[ArrowValue]]) throws
        -> Int
    {
        let (type, rb) = try header(fb)
        if type == 2 { throw error("dictionary batches are not supported") }
        guard type == 3 else { throw error("unexpected message (header type \(type)) after the schema") }
        if try fb.table(rb, 3) != nil {
            throw error("compressed record batches are not supported (save the dataset without compression)")
        }
        let length = try fb.field(rb, 0).map { try fb.i64($0) } ?? 0
        guard let (nodeCount, nodes) = try fb.vector(rb, 1), let (bufferCount, buffers) = try fb.vector(rb, 2) else {
            throw error("record batch without nodes or buffers")
        }
        guard nodeCount == kinds.count else {
            throw error("record batch has \(nodeCount) columns, the schema \(kinds.count)")
        }
        // Null columns and buffers shared between columns cost the file nothing, so the body does not bound what
        // a batch builds: the file's size does (a cell per bit of the file, every column counted, all batches).
        let cells = (columns.first?.count ?? 0) * kinds.count
        guard length >= 0, length <= max(body.count, 1) * 8, length <= (cellBudget - cells) / max(1, kinds.count)
        else {
            throw error(
                "record batch of \(length) rows × \(kinds.count) columns is more than a file of \(bytes.count) bytes can hold"
            )
        }
        var b = 0
        func buffer() throws -> Range<Int> {
            guard b < bufferCount else { throw error("record batch has too few buffers") }
            let p = buffers + 16 * b
            b += 1
            let off = try fb.i64(p)
            let len = try fb.i64(p + 8)
            guard off >= 0, len >= 0, off <= body.count, len <= body.count - off else {
                throw error("buffer (\(off), \(len)) outside the body of \(body.count) bytes")
            }
            return (body.lowerBound + off)..<(body.lowerBound + off + len)
        }
        for (c, kind) in kinds.enumerated() {
            let n = try fb.i64(nodes + 16 * c)
            let nulls = try fb.i64(nodes + 16 * c + 8)
            guard n == length, nulls >= 0, nulls <= n else {
                throw error("column \(c): \(n) values and \(nulls) nulls in a batch of \(length) rows")
            }
            if case .null = kind {
                columns[c] += [ArrowValue](repeating: .null, count: n)
                continue
            }
            let validity = try buffer()
            guard nulls == 0 || validity.count >= (n + 7) / 8 else {
                throw error("column \(c): validity bitmap of \(validity.count) bytes for \(n) rows with \(nulls) nulls")
            }
            func valid(_ i: Int) throws -> Bool {
                nulls == 0 || bytes[validity.lowerBound + i / 8] & (1 << UInt8(i % 8)) != 0
            }
            columns[c] += try values(kind, column: c, rows: n, valid: valid, buffer: buffer)
        }
        return length
    }

    func values(_ kind: Kind, column c: Int, rows n: Int, valid: (Int) throws -> Bool, buffer: () throws -> Range<Int>)
        throws -> [ArrowValue]
    {
        // buffers are checked against the body first
        func le(_ p: Int, _ width: Int) -> UInt64 { littleEndian(bytes, p, width) }
        switch kind {
        case .int(let bits, let signed):
            let data = try buffer()
            let w = bits / 8
            guard data.count >= n * w else {
                throw error("column \(c): \(data.count) bytes for \(n) \(bits)-bit integers")
            }
            return try (0..<n).map { i in
                guard try valid(i) else { return .null }
                let raw = le(data.lowerBound + i * w, w)
                if signed {
                    let shift = UInt64(64 - bits)
                    return .int(Int(Int64(bitPattern: raw << shift) >> Int64(shift)))
                }
                guard raw <= UInt64(Int.max) else { throw error("column \(c): unsigned value \(raw) too large") }
                return .int(Int(raw))
            }
        case .utf8(let large):
            let offsets = try buffer()
            let data = try buffer()
            let w = large ? 8 : 4
            guard n == 0 || offsets.count >= (n + 1) * w else {
                throw error("column \(c): \(offsets.count) bytes of offsets for \(n) strings")
            }
            func offset(_ i: Int) -> Int {
                Int(
                    Int64(
                        bitPattern: large
                            ? le(offsets.lowerBound + i * 8, 8)
                            : UInt64(bitPattern: Int64(Int32(truncatingIfNeeded: le(offsets.lowerBound + i * 4, 4))))))
            }
            // Columns may share one data buffer: what they decode together is bounded by the file's size.
            if n > 0 {
                let (span, overflow) = offset(n).subtractingReportingOverflow(offset(0))
                textBudget.left -= overflow ? Int.max : max(0, span)
                guard textBudget.left >= 0 else {
                    throw error("column \(c): more text than a file of \(bytes.count) bytes can hold")
                }
            }
            return try (0..<n).map { i in
                let a = offset(i)
                let z = offset(i + 1)
                guard a >= 0, a <= z, z <= data.count else {
                    throw error("column \(c), row \(i): string offsets \(a)…\(z) outside \(data.count) bytes of data")
                }
                guard try valid(i) else { return .null }
                guard let s = String(validating: bytes[(data.lowerBound + a)..<(data.lowerBound + z)], as: UTF8.self)
                else { throw error("column \(c), row \(i): not UTF-8") }
                return .string(s)
            }
        case .bool:
            let data = try buffer()
            guard data.count >= (n + 7) / 8 else { throw error("column \(c): \(data.count) bytes for \(n) booleans") }
            return try (0..<n).map { i in
                try valid(i) ? .bool(bytes[data.lowerBound + i / 8] & (1 << UInt8(i % 8)) != 0) : .null
            }
        case .null:
            return [ArrowValue](repeating: .null, count: n)
        }
    }
}

/// Bytes of text a reader may still decode.
final class TextBudget {
    var left: Int
    init(left: Int) { self.left = left }
}

enum ArrowValue {
    case null
    case string(String)
    case int(Int)
    case bool(Bool)
}

/// The little-endian unsigned value of `width` bytes at `p` (the caller has checked the range).
@inline(__always)
func littleEndian(_ bytes: [UInt8], _ p: Int, _ width: Int) -> UInt64 {
    (0..<width).reduce(UInt64(0)) { $0 | UInt64(bytes[p + $1]) << (8 * UInt64($1)) }
}

/// A malformed or unsupported Arrow file (exit 3).
public struct ArrowError: ClassifiedError {
    public let path: String, offset: Int, reason: String
    public var kind: FailureKind { .badInput }
    public var description: String { "\(path): Arrow IPC at byte \(offset): \(reason)" }
}
