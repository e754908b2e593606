// pytorch_model.bin (torch zip + pickle): round trips, damaged and hostile files end in a typed error naming the
// file — never a crash, never code execution (forbidden globals and object-building opcodes refused).
import Checkpoint
import Foundation
import TestSupport
import XCTest

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
