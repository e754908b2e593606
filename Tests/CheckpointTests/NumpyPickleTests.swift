// numpy arrays in the safe unpickler, and the reference's pickled mean activations
// (Tests/Fixtures/reference/activations/mnli.pkl, copied unchanged from princeton-nlp/Heuristic-Core, MIT).
import Checkpoint
import Foundation
import TestSupport
import XCTest

final class NumpyPickleTests: XCTestCase {
    /// The opcodes pickle.dump writes for {key: numpy array} (protocol 4), with the array's parts as given.
    func pickle(
        _ key: String = "a", code: String = "f4", order: String = "<", shape: [Int], fortran: Bool = false,
        data: [UInt8],
        module: String = "numpy.core.multiarray", function: String = "_reconstruct"
    ) -> [UInt8] {
        func str(_ s: String) -> [UInt8] { [0x8C, UInt8(s.utf8.count)] + Array(s.utf8) }
        func global(_ m: String, _ n: String) -> [UInt8] { str(m) + str(n) + [0x93] }
        var b: [UInt8] = [0x80, 0x04, 0x7D] + str(key)
        b +=
            global(module, function) + global("numpy", "ndarray") + [
                0x4B, 0x00, 0x85, 0x43, 0x01, UInt8(ascii: "b"), 0x87, 0x52,
            ]
        b +=
            [0x28, 0x4B, 0x01, 0x28]
            + shape.flatMap { [0x4A] + withUnsafeBytes(of: Int32($0).littleEndian) { Array($0) } } + [0x74]
        b += global("numpy", "dtype") + str(code) + [0x89, 0x88, 0x87, 0x52]
        b +=
            [0x28, 0x4B, 0x03] + str(order) + [
                0x4E, 0x4E, 0x4E, 0x4A, 0xFF, 0xFF, 0xFF, 0xFF, 0x4A, 0xFF, 0xFF, 0xFF, 0xFF, 0x4B, 0x00, 0x74, 0x62,
            ]
        b += [fortran ? 0x88 : 0x89, 0x42] + withUnsafeBytes(of: UInt32(data.count).littleEndian) { Array($0) } + data
        return b + [0x74, 0x62, 0x73, 0x2E]
    }
    func floatsBytes(_ v: [Float]) -> [UInt8] {
        v.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian) { Array($0) } }
    }

    func array(_ bytes: [UInt8]) throws -> NumpyArray {
        guard case .dict(let d) = try Unpickler(bytes: bytes, path: "t.pkl").load(),
            case .ndarray(let a)? = d.first?.value
        else {
            XCTFail("the unpickler did not read a dict of one array")
            throw CheckpointError.malformed(path: "t.pkl", offset: nil, reason: "not a dict of one array")
        }
        return a
    }

    func testArraysAsNumpyWritesThem() throws {
        let a = try array(pickle(shape: [2, 3], data: floatsBytes([1, 2, 3, 4, 5, 6])))
        XCTAssertEqual(a.dtype, .f32)
        XCTAssertEqual(a.shape, [2, 3])
        XCTAssertEqual(a.data, floatsBytes([1, 2, 3, 4, 5, 6]))
        XCTAssertEqual(
            // numpy 2.x spelling
            try array(pickle(shape: [4], data: floatsBytes([1, 2, 3, 4]), module: "numpy._core.multiarray")).shape, [4])
        XCTAssertEqual(
            try array(pickle(code: "f8", order: "=", shape: [1], data: [UInt8](repeating: 0, count: 8))).dtype, .f64)
        // 1-D: order is moot
        XCTAssertEqual(try array(pickle(shape: [3], fortran: true, data: floatsBytes([1, 2, 3]))).shape, [3])
    }

    func testHostileArraysAreRefusedByName() {
        let cases: [([UInt8], String)] = [
            (pickle(shape: [2, 3], data: floatsBytes([1, 2, 3])), "needs 24 bytes of data, the pickle has 12"),
            (pickle(shape: [Int(Int32.max), Int(Int32.max), Int(Int32.max)], data: []), "is too large"),
            (pickle(shape: [-1], data: []), "bad dimension"),
            (pickle(order: ">", shape: [1], data: floatsBytes([1])), "not little-endian"),
            (pickle(code: "c16", shape: [1], data: [UInt8](repeating: 0, count: 16)), "is not one of"),
            (pickle(shape: [2, 2], fortran: true, data: floatsBytes([1, 2, 3, 4])), "Fortran-ordered"),
            (
                pickle(shape: [1], data: floatsBytes([1]), module: "numpy.core.multiarray", function: "scalar"),
                "numpy.core.multiarray.scalar"
            ),
            (pickle(shape: [1], data: floatsBytes([1]), module: "numpy", function: "load"), "numpy.load"),
        ]
        for (bytes, message) in cases {
            XCTAssertThrowsError(try Unpickler(bytes: bytes, path: "t.pkl").load(), message) {
                XCTAssert("\($0)".contains(message), "\($0)")
            }
        }
    }

    /// The reference's mnli.pkl as an hcore activation set: shapes of bert-base, and values equal numpy's
    /// (per-layer sums and two entries printed by numpy 2.x from the same file).
    func testReferenceActivationsEqualNumpys() throws {
        let path = repositoryRoot.path + "/Tests/Fixtures/reference/activations/mnli.pkl"
        XCTAssertTrue(isPickleFile(path))
        let st = try SafetensorsFile(
            file: MappedFile(data: try referenceActivationsSafetensors(pickle: path), name: path))
        XCTAssertEqual(st.info("avg_head")?.shape, [12, 12, 64])
        XCTAssertEqual(st.info("avg_mlp")?.shape, [12, 768])
        let head = try st.floats("avg_head")
        let mlp = try st.floats("avg_mlp")
        let headSums = [
            1.470161, 0.966608, 0.399825, 0.351948, 3.839838, -2.181435, 2.044008, -1.050027, -1.09061, -1.158796,
            0.139488, 9.381427,
        ]
        let mlpSums = [
            -7.994681, -1.708268, 2.087281, 1.815828, 1.863082, -0.591726, 0.143592, -14.578523, -31.268398, -25.53647,
            -24.034738, 4.29062,
        ]
        for l in 0..<12 {
            XCTAssertEqual(
                head[(l * 768)..<((l + 1) * 768)].reduce(0.0) { $0 + Double($1) }, headSums[l], accuracy: 2e-5,
                "layer \(l) heads")
            XCTAssertEqual(
                mlp[(l * 768)..<((l + 1) * 768)].reduce(0.0) { $0 + Double($1) }, mlpSums[l], accuracy: 2e-5,
                "layer \(l) MLP")
        }
        XCTAssertEqual(head[5 * 768 + 7 * 64 + 13], Float(0.016962265595793724))  // layer 5, head 7, dim 13
        XCTAssertEqual(mlp[11 * 768 + 767], Float(-0.19417016208171844))
    }

    /// The fuzz seed (numpy 2.x pickle.dumps, protocol 4, of two layers: float32 heads, float64 MLPs) converts;
    /// its protocol-2 twin (bytes through `_codecs.encode`) is refused by name.
    func testFuzzSeedsConvertOrAreRefused() throws {
        let dir = repositoryRoot.path + "/Fuzz/corpus/activations-pickle/"
        let st = try SafetensorsFile(
            file: MappedFile(
                data: try referenceActivationsSafetensors(pickle: dir + "two-layers.pkl"), name: "two-layers"))
        XCTAssertEqual(try st.floats("avg_head"), [0, 1, 2, 3, 4, 5, 1, 2, 3, 4, 5, 6])
        XCTAssertEqual(try st.floats("avg_mlp"), [0, 1, 2, 3, 4, 5, -1, 0, 1, 2, 3, 4])
        XCTAssertThrowsError(try referenceActivationsSafetensors(pickle: dir + "two-layers-proto2.pkl")) {
            XCTAssert("\($0)".contains("_codecs.encode"), "\($0)")
        }
    }
}
