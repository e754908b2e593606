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

final class TorchBinTests: XCTestCase {
    func writer() -> TorchCheckpointWriter {
        var w = TorchCheckpointWriter()
        w.add("layer.weight", shape: [2, 3], [1, 2, 3, 4, 5, 6])
        w.add("layer.bias", shape: [2], [0.5, -0.5])
        w.add("position_ids", shape: [1, 3], int64: [0, 1, 2])
        return w
    }

    func open(_ bytes: [UInt8]) throws -> TorchCheckpoint {
        try TorchCheckpoint(file: MappedFile(data: bytes, name: "pytorch_model.bin"))
    }

    func testRoundTrip() throws {
        let c = try open(writer().serialized())
        XCTAssertEqual(try c.floats("layer.weight"), [1, 2, 3, 4, 5, 6])
        XCTAssertEqual(c.info("layer.weight")?.shape, [2, 3])
        XCTAssertEqual(try c.floats("layer.bias"), [0.5, -0.5])
        XCTAssertEqual(try c.ints("position_ids"), [0, 1, 2])
    }

    func testZipWithoutDataPkl() {
        XCTAssertThrowsError(try open(writer().serialized(omitPickle: true))) { e in
            XCTAssert("\(e)".contains("no data.pkl"), "\(e)")
        }
    }

    func testNotAZip() {
        XCTAssertThrowsError(try open(Array("hello, this is not a zip archive at all".utf8))) {
            XCTAssert($0 is CheckpointError)
        }
    }

    /// GLOBAL 'os system' and STACK_GLOBAL 'builtins eval' are refused by name before anything else.
    func testForbiddenGlobals() {
        var p = PickleBuilder()
        p.op(0x80)
        p.byte(2)
        p.global("os", "system")
        p.unicode("touch /tmp/hcore-pwned")
        p.op(0x85)
        p.op(0x52)
        p.op(0x2E)
        XCTAssertThrowsError(try open(writer().serialized(pickleOverride: p.bytes))) { e in
            guard case CheckpointError.forbiddenGlobal(_, _, let name) = e else { return XCTFail("\(e)") }
            XCTAssertEqual(name, "os.system")
            XCTAssert("\(e)".contains("refused global 'os.system'"))
        }
        var q = PickleBuilder()
        q.op(0x80)
        q.byte(4)
        q.op(0x8C)
        q.byte(8)
        q.bytes += Array("builtins".utf8)
        q.op(0x8C)
        q.byte(4)
        q.bytes += Array("eval".utf8)
        q.op(0x93)
        q.unicode("__import__('os').system('true')")
        q.op(0x85)
        q.op(0x52)
        q.op(0x2E)
        XCTAssertThrowsError(try open(writer().serialized(pickleOverride: q.bytes))) { e in
            guard case CheckpointError.forbiddenGlobal(_, _, let name) = e else { return XCTFail("\(e)") }
            XCTAssertEqual(name, "builtins.eval")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: "/tmp/hcore-pwned"))
    }

    func testObjectInstantiatingOpcodesRefused() {
        var p = PickleBuilder()
        p.op(0x80)
        p.byte(2)
        p.op(0x28)
        p.op(0x69)  // MARK, INST
        XCTAssertThrowsError(try open(writer().serialized(pickleOverride: p.bytes))) {
            XCTAssert("\($0)".contains("opcode 0x69"))
        }
    }

    func testNonContiguousAndOutOfStorage() {
        var p = PickleBuilder()
        p.op(0x80)
        p.byte(2)
        p.op(0x7D)
        p.op(0x28)
        p.unicode("t")
        p.global("torch._utils", "_rebuild_tensor_v2")
        p.op(0x28)
        p.op(0x28)
        p.unicode("storage")
        p.global("torch", "FloatStorage")
        p.unicode("0")
        p.unicode("cpu")
        p.int(6)
        p.op(0x74)
        p.op(0x51)
        p.int(0)
        p.tuple([3, 2])
        p.tuple([1, 3])  // transposed view
        p.op(0x89)
        p.global("collections", "OrderedDict")
        p.op(0x29)
        p.op(0x52)
        p.op(0x74)
        p.op(0x52)
        p.op(0x75)
        p.op(0x2E)
        XCTAssertThrowsError(try open(writer().serialized(pickleOverride: p.bytes))) {
            XCTAssert("\($0)".contains("not contiguous"), "\($0)")
        }
    }

    func testEveryTruncationIsAnErrorAndFlipsNeverCrash() {
        let full = writer().serialized()
        for n in stride(from: 0, to: full.count, by: 1) {
            XCTAssertThrowsError(try open(Array(full[0..<n]))) { XCTAssert($0 is CheckpointError, "\($0)") }
        }
        for i in 0..<full.count {
            var b = full
            b[i] ^= 0xFF
            if let c = try? open(b) { for n in c.names { _ = try? c.floats(n) } }
        }
    }

    func testGoldenBinUnderstood() throws {
        let c = try TorchCheckpoint(path: fixtures + "/models/tiny-bert-bin/pytorch_model.bin")
        let s = try SafetensorsFile(path: fixtures + "/models/tiny-bert/model.safetensors")
        XCTAssertEqual(Set(c.names), Set(s.names))
        for n in s.names { XCTAssertEqual(try c.floats(n), try s.floats(n), n) }
    }
}

let fixtures = fixturesFolder.path

final class ConfigTests: XCTestCase {
    func config(_ json: String) throws -> BertConfig {
        try BertConfig(json: JSONSerialization.jsonObject(with: Data(json.utf8)) as! [String: Any], path: "config.json")
    }

    let base = #""vocab_size":100,"hidden_size":8,"num_hidden_layers":1,"num_attention_heads":2,"intermediate_size":16"#

    func testDefaultsAndLabels() throws {
        let c = try config("{\(base),\"id2label\":{\"1\":\"yes\",\"0\":\"no\"}}")
        XCTAssertEqual(c.labels, ["no", "yes"])
        XCTAssertEqual(c.layerNormEps, 1e-12)
        XCTAssertEqual(c.headDim, 4)
        XCTAssertEqual(try config("{\(base),\"num_labels\":3}").labels, ["LABEL_0", "LABEL_1", "LABEL_2"])
    }

    func testUnsupportedSettingsAreRefused() {
        XCTAssertThrowsError(try config("{\(base),\"hidden_act\":\"relu\"}")) {
            XCTAssert("\($0)".contains("hidden_act 'relu'"))
        }
        XCTAssertThrowsError(try config("{\(base),\"position_embedding_type\":\"relative_key\"}")) {
            XCTAssert("\($0)".contains("relative_key"))
        }
        XCTAssertThrowsError(try config(#"{"vocab_size":100}"#)) { XCTAssert("\($0)".contains("hidden_size")) }
        XCTAssertThrowsError(try config("{\(base),\"model_type\":\"gpt2\"}"))
        XCTAssertThrowsError(
            try config(
                #"{"vocab_size":100,"hidden_size":10,"num_hidden_layers":1,"num_attention_heads":3,"intermediate_size":16}"#
            ))
    }
}

final class ZstdTests: XCTestCase {
    func testRoundTripAndDamage() throws {
        let text = Array(String(repeating: "the heuristic core ", count: 500).utf8)
        let z = Zstd.compress(text)
        XCTAssertLessThan(z.count, text.count / 10)
        XCTAssertEqual(try Zstd.decompress(z), text)
        XCTAssertThrowsError(try Zstd.decompress(Array(z.dropLast(3))))
        var bad = z
        bad[bad.count / 2] ^= 0xFF
        if let out = try? Zstd.decompress(bad) { XCTAssertNotEqual(out, text) }
    }
}
