// The reference repository's mean activations (data/activations/mnli.pkl, qqp.pkl): a pickled dict of
// numpy arrays, module name → mean, read by the safe unpickler (nothing is executed):
//   bert.encoder.layer.L.attention.self   [H, d]   mean per-head context (before the output projection)
//   bert.encoder.layer.L.output           [D]      mean output of the MLP's second dense layer (before the residual)
// — the same quantities as hcore's avg_head and avg_mlp (its PertSelfAttention and PertOutput), so the file
// becomes a safetensors set that `--activations` and `store add-activations` take like their own.
import Failures
import Foundation

/// Whether a file is a pickle (by name, or by its PROTO opcode). Opened as every input is (`InputFiles`): a FIFO
/// or a device is not waited on here but refused by the reader that follows.
public func isPickleFile(_ path: String) -> Bool {
    if path.hasSuffix(".pkl") || path.hasSuffix(".pickle") { return true }
    guard let (fd, size) = try? InputFiles.openRegular(path) else { return false }
    defer { close(fd) }
    var first: UInt8 = 0
    return size > 0 && pread(fd, &first, 1, 0) == 1 && first == 0x80
}

/// The pickle at `path` as the bytes of an hcore mean-activation safetensors set (avg_head [L, H, d],
/// avg_mlp [L, D], no model fingerprint: the pickle carries none).
public func referenceActivationsSafetensors(pickle path: String) throws -> [UInt8] {
    try referenceActivationsSafetensors(pickleBytes: try readDataFile(path), path: path)
}

/// The same from the pickle's (decompressed) bytes, read as if from `path` (named in errors).
public func referenceActivationsSafetensors(pickleBytes bytes: [UInt8], path: String) throws -> [UInt8] {
    func bad(_ why: String) -> CheckpointError { .malformed(path: path, offset: 0, reason: why) }
    guard case .dict(let entries) = try Unpickler(bytes: bytes, path: path).load() else {
        throw bad("expected a pickled dict of module name → numpy array (the reference's data/activations/*.pkl)")
    }
    var heads: [Int: NumpyArray] = [:]
    var mlps: [Int: NumpyArray] = [:]
    let layerPrefix = BertTensorNames.prefix + "encoder.layer."
    for e in entries {
        guard case .string(let key) = e.key, case .ndarray(let a) = e.value, key.hasPrefix(layerPrefix) else {
            continue
        }
        guard let l = Int(key.dropFirst(layerPrefix.count).prefix { $0.isNumber }), l < 4096 else { continue }
        let names = BertTensorNames.layer(l)
        if key == BertTensorNames.prefix + names.attentionSelf { heads[l] = a }
        if key == BertTensorNames.prefix + names.outputModule { mlps[l] = a }
    }
    let L = heads.count
    guard L > 0, Set(heads.keys) == Set(0..<L), Set(mlps.keys) == Set(0..<L) else {
        throw bad(
            "needs bert.encoder.layer.L.attention.self and bert.encoder.layer.L.output for every layer L = 0, 1, …; found layers \(heads.keys.sorted()) and \(mlps.keys.sorted())"
        )
    }
    let shape = heads[0]!.shape
    let D = mlps[0]!.shape
    guard shape.count == 2, D.count == 1,
        (try? Checked.elements(shape, times: L, "bert.encoder.layer.0.attention.self")) != nil,
        D[0] == shape[0] * shape[1]
    else {
        throw bad(
            "bert.encoder.layer.0: attention.self must be [heads, head_dim] and output [heads · head_dim]; found \(shape) and \(D)"
        )
    }
    var avgHead: [Float] = []
    var avgMLP: [Float] = []
    for l in 0..<L {
        let names = BertTensorNames.layer(l)
        for (module, a, want) in [(names.attentionSelf, heads[l]!, shape), (names.outputModule, mlps[l]!, D)] {
            let key = BertTensorNames.prefix + module
            guard a.shape == want else { throw bad("\(key) has shape \(a.shape), layer 0's has \(want)") }
            let values = try floats(a, key, path: path)
            if module == names.outputModule { avgMLP += values } else { avgHead += values }
        }
    }
    var w = SafetensorsWriter()
    w.metadata = [
        "format": "hcore-activations-1", "source": "reference pickle " + (path as NSString).lastPathComponent,
    ]
    w.add("avg_head", shape: [L, shape[0], shape[1]], avgHead)
    w.add("avg_mlp", shape: [L, D[0]], avgMLP)
    return w.serialized()
}

/// A float32 or float64 numpy array's values as Float (little-endian data).
func floats(_ a: NumpyArray, _ name: String, path: String) throws -> [Float] {
    switch a.dtype {
    case .f32?:
        return stride(from: 0, to: a.data.count, by: 4).map { i in
            Float(
                bitPattern: UInt32(a.data[i]) | UInt32(a.data[i + 1]) << 8 | UInt32(a.data[i + 2]) << 16 | UInt32(
                    a.data[i + 3]) << 24)
        }
    case .f64?:
        return stride(from: 0, to: a.data.count, by: 8).map { i in
            Float(Double(bitPattern: (0..<8).reduce(UInt64(0)) { $0 | UInt64(a.data[i + $1]) << (8 * UInt64($1)) }))
        }
    default:
        throw CheckpointError.malformed(
            path: path, offset: 0,
            reason: "\(name) is \(a.dtype?.rawValue ?? "an unbuilt array"), not float32 or float64")
    }
}
