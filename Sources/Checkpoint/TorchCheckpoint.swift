// pytorch_model.bin as torch.save writes it (PyTorch ≥ 1.6): a stored zip with <prefix>/data.pkl (the
// state dict, pickled) and <prefix>/data/<key> (one raw little-endian storage per key).
// The pickle is read by `Unpickler`, which never executes anything.

public final class TorchCheckpoint: MappedTensorSource {
    public let file: MappedFile
    public var path: String { file.path }
    private let infos: [String: TensorInfo]
    public let names: [String]

    public convenience init(path: String) throws {
        try self.init(file: MappedFile(path: path))
    }

    public init(file: MappedFile) throws {
        self.file = file
        let path = file.path
        if file.count >= 2, file[0] == 0x80 {
            throw CheckpointError.unsupported(
                path: path,
                reason:
                    "this is the legacy (pre-1.6, non-zip) torch.save format; load it in Python and re-save with torch.save or safetensors"
            )
        }
        let zip = try ZipArchive(file: file)
        let pickles = zip.names.filter { $0 == "data.pkl" || $0.hasSuffix("/data.pkl") }
        guard pickles.count == 1, let pklName = pickles.first, let pkl = zip.entries[pklName] else {
            throw CheckpointError.malformed(
                path: path, offset: nil,
                reason: pickles.isEmpty
                    ? "zip archive has no data.pkl entry (is this a torch.save file?)"
                    : "zip archive has \(pickles.count) data.pkl entries")
        }
        let prefix = String(pklName.dropLast("data.pkl".count))
        try zip.verify(pkl)
        let root = try Unpickler(bytes: file.slice(pkl.dataRange), path: path).load()
        guard case .dict(let entries) = root else {
            throw CheckpointError.unsupported(
                path: path,
                reason:
                    "the pickle is not a state dict (a dict of tensors); save model.state_dict(), not the model object")
        }
        var infos: [String: TensorInfo] = [:]
        var verified = Set<String>()
        for e in entries {
            guard case .string(let name) = e.key else {
                throw CheckpointError.malformed(path: path, offset: nil, reason: "state dict key is not a string")
            }
            // Non-tensor extras are ignored.
            guard case .tensor(let t) = e.value else { continue }
            let entryName = prefix + "data/" + t.storage.key
            guard let storage = zip.entries[entryName] else {
                throw CheckpointError.malformed(
                    path: path, offset: nil,
                    reason:
                        "tensor '\(name)' refers to storage '\(t.storage.key)' but '\(entryName)' is not in the archive"
                )
            }
            if verified.insert(entryName).inserted { try zip.verify(storage) }
            infos[name] = try TorchCheckpoint.info(name, t, storage: storage.dataRange, path: path)
        }
        self.infos = infos
        self.names = infos.keys.sorted()
    }

    /// Where tensor `t` lies in its storage's bytes, checked: the storage's size, the shape's product, a contiguous
    /// stride, the elements within the storage.
    static func info(_ name: String, _ t: TensorRef, storage range: Range<Int>, path: String) throws -> TensorInfo {
        func bad(_ reason: String, at offset: Int? = nil) -> CheckpointError {
            .malformed(path: path, offset: offset, reason: reason)
        }
        let dsize = t.storage.dtype.size
        let (storageBytes, overflow) = t.storage.elementCount.multipliedReportingOverflow(by: dsize)
        guard !overflow, range.count == storageBytes else {
            throw bad(
                "storage '\(t.storage.key)' holds \(range.count) bytes, expected \(t.storage.elementCount) × \(dsize)",
                at: range.lowerBound)
        }
        var numel = 1
        for d in t.shape {
            let (p, o) = numel.multipliedReportingOverflow(by: d)
            guard !o else { throw bad("tensor '\(name)' shape overflows") }
            numel = p
        }
        var expected = 1
        for axis in stride(from: t.shape.count - 1, through: 0, by: -1) {
            if t.shape[axis] > 1 && t.stride[axis] != expected {
                throw CheckpointError.unsupported(
                    path: path,
                    reason:
                        "tensor '\(name)' is not contiguous (stride \(t.stride) for shape \(t.shape)); call .contiguous() before saving"
                )
            }
            let (next, o) = expected.multipliedReportingOverflow(by: t.shape[axis])
            guard !o else { throw bad("tensor '\(name)' shape overflows") }
            expected = next
        }
        guard t.offset <= t.storage.elementCount, numel <= t.storage.elementCount - t.offset else {
            throw bad(
                "tensor '\(name)' (offset \(t.offset), \(numel) elements) runs past its storage of \(t.storage.elementCount)"
            )
        }
        let begin = range.lowerBound + t.offset * dsize
        return TensorInfo(
            name: name, dtype: t.storage.dtype, shape: t.shape, byteRange: begin..<(begin + numel * dsize))
    }

    public func info(_ name: String) -> TensorInfo? { infos[name] }

}
