// Damaged and hostile checkpoint files end in a typed CheckpointError with a clear message — never a
// crash, never code execution.
import Checkpoint
import Foundation
import TestSupport
import XCTest

final class SafetensorsTests: XCTestCase {
    func sample() -> [UInt8] {
        var w = SafetensorsWriter()
        w.metadata = ["format": "pt"]
        w.add("a", shape: [2, 3], [1, 2, 3, 4, 5, 6])
        w.add("b", shape: [4], [-1, 0.5, 7, 8])
        return w.serialized()
    }

    func open(_ bytes: [UInt8]) throws -> SafetensorsFile {
        try SafetensorsFile(file: MappedFile(data: bytes, name: "test.safetensors"))
    }

    /// Builds a file from a literal header and `dataBytes` bytes of data.
    func file(header: String, dataBytes: Int) -> [UInt8] {
        let h = Array(header.utf8)
        var out: [UInt8] = (0..<8).map { UInt8((UInt64(h.count) >> (8 * UInt64($0))) & 0xFF) }
        out += h
        out += [UInt8](repeating: 0, count: dataBytes)
        return out
    }

    func assertMalformed(_ bytes: [UInt8], _ fragment: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try open(bytes), file: file, line: line) { e in
            XCTAssert(e is CheckpointError, "untyped error \(e)", file: file, line: line)
            XCTAssert("\(e)".contains(fragment), "message '\(e)' lacks '\(fragment)'", file: file, line: line)
        }
    }

    func testRoundTrip() throws {
        let f = try open(sample())
        XCTAssertEqual(try f.floats("a"), [1, 2, 3, 4, 5, 6])
        XCTAssertEqual(try f.floats("b"), [-1, 0.5, 7, 8])
        XCTAssertEqual(f.info("a")?.shape, [2, 3])
        XCTAssertEqual(f.metadata["format"], "pt")
    }

    func testEveryTruncationIsAnError() {
        let full = sample()
        for n in 0..<full.count {
            XCTAssertThrowsError(try open(Array(full[0..<n])), "truncated to \(n) bytes") {
                XCTAssert($0 is CheckpointError)
            }
        }
    }

    func testHeaderLengthPastEnd() {
        var b = sample()
        b[0] = 0xFF
        b[1] = 0xFF
        assertMalformed(b, "past the end")
        var huge = sample()
        for i in 0..<8 { huge[i] = 0xFF }
        assertMalformed(huge, "past the end")
    }

    func testBadJSONAndEntries() {
        assertMalformed(file(header: "{not json", dataBytes: 0), "not valid JSON")
        assertMalformed(file(header: "[1,2]", dataBytes: 0), "not a JSON object")
        assertMalformed(
            file(header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}"#, dataBytes: 8), "needs 8")
        assertMalformed(
            file(header: #"{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}"#, dataBytes: 8), "shape")
        assertMalformed(
            file(header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}"#, dataBytes: 8), "data_offsets")
        assertMalformed(file(header: #"{"a":{"shape":[2],"data_offsets":[0,8]}}"#, dataBytes: 8), "no dtype")
        assertMalformed(
            file(header: #"{"a":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,8]}}"#, dataBytes: 8),
            "shape")
        assertMalformed(
            file(
                header: #"{"a":{"dtype":"F32","shape":[1048576,1048576,1048576,1048576],"data_offsets":[0,8]}}"#,
                dataBytes: 8), "overflows")
    }

    func testOutOfFileRange() {
        assertMalformed(
            file(header: #"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#, dataBytes: 8),
            "past the end of the data section")
    }

    func testOverlappingRanges() {
        let h =
            #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#
        assertMalformed(file(header: h, dataBytes: 12), "overlap")
    }

    func testUnknownAndWrongDtype() throws {
        XCTAssertThrowsError(
            try open(file(header: #"{"a":{"dtype":"Q4_K","shape":[2],"data_offsets":[0,8]}}"#, dataBytes: 8))
        ) {
            XCTAssert("\($0)".contains("Q4_K"))
        }
        let ints = try open(file(header: #"{"a":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}"#, dataBytes: 8))
        XCTAssertThrowsError(try ints.floats("a")) { XCTAssert("\($0)".contains("expected a floating type")) }
        XCTAssertThrowsError(try ints.floats("missing")) { XCTAssert($0 is CheckpointError) }
    }

    func testHalfAndBFloat16() throws {
        // F16: 1.0 = 0x3C00, -2.0 = 0xC000, 65504 = 0x7BFF, smallest subnormal 0x0001; BF16: 1.0 = 0x3F80.
        let h =
            #"{"h":{"dtype":"F16","shape":[4],"data_offsets":[0,8]},"b":{"dtype":"BF16","shape":[1],"data_offsets":[8,10]}}"#
        var bytes = file(header: h, dataBytes: 0)
        bytes += [0x00, 0x3C, 0x00, 0xC0, 0xFF, 0x7B, 0x01, 0x00, 0x80, 0x3F]
        let f = try open(bytes)
        XCTAssertEqual(try f.floats("h"), [1, -2, 65504, Float(5.960464477539063e-08)])
        XCTAssertEqual(try f.floats("b"), [1])
    }

    func testRandomByteFlipsNeverCrash() {
        let base = sample()
        for i in 0..<base.count {
            for v: UInt8 in [0x00, 0xFF, 0x22, 0x7B] {
                var b = base
                b[i] = v
                _ = try? open(b).floats("a")
            }
        }
    }
}
