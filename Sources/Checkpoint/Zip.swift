// The subset of ZIP that torch.save writes: stored (uncompressed) entries, a central directory, and
// optionally ZIP64 records. Every offset and length is checked against the file before use.

public struct ZipEntry: Sendable {
    public let name: String
    /// Absolute byte range of the entry's stored data.
    public let dataRange: Range<Int>
    /// The CRC-32 the central directory records for the data.
    public let crc: UInt32
}

extension ZipArchive {
    /// Checks an entry's data against its recorded CRC-32 (a corrupt download or a flipped bit in a
    /// weight must not load as a plausible model).
    public func verify(_ entry: ZipEntry) throws {
        let actual = crc32(file.bytes + entry.dataRange.lowerBound, count: entry.dataRange.count)
        guard actual == entry.crc else {
            throw CheckpointError.malformed(
                path: file.path, offset: entry.dataRange.lowerBound,
                reason:
                    "zip entry '\(entry.name)' fails its CRC-32 (recorded \(String(entry.crc, radix: 16)), computed \(String(actual, radix: 16)))"
            )
        }
    }
}

public struct ZipArchive {
    public let file: MappedFile
    public let entries: [String: ZipEntry]
    public let names: [String]

    public init(file: MappedFile) throws {
        self.file = file
        let (entryCount, cdOffset, cdSize) = try Self.centralDirectory(file)
        var entries: [String: ZipEntry] = [:]
        var names: [String] = []
        var p = cdOffset
        for _ in 0..<entryCount {
            let (entry, next) = try Self.entry(file, at: p, directoryEnd: cdOffset + cdSize)
            entries[entry.name] = entry
            names.append(entry.name)
            p = next
        }
        self.entries = entries
        self.names = names
    }

    static func fail(_ file: MappedFile, _ offset: Int?, _ reason: String) -> CheckpointError {
        .malformed(path: file.path, offset: offset, reason: reason)
    }

    /// The end-of-central-directory record (22 bytes + a comment of ≤ 65535, searched backwards), through
    /// its ZIP64 locator when a field overflows: entry count, directory offset and size, all within the file.
    static func centralDirectory(_ file: MappedFile) throws -> (count: Int, offset: Int, size: Int) {
        guard file.count >= 22 else { throw fail(file, 0, "too short to be a zip archive (\(file.count) bytes)") }
        var eocd = -1
        var i = file.count - 22
        let lowest = max(0, file.count - 22 - 65535)
        while i >= lowest {
            if file.uint(at: i, size: 4) == 0x0605_4B50 {
                eocd = i
                break
            }
            i -= 1
        }
        guard eocd >= 0 else {
            throw fail(file, nil, "no zip end-of-central-directory record (not a torch.save zip file?)")
        }
        var entryCount = Int(file.uint(at: eocd + 10, size: 2))
        var cdSize = Int(file.uint(at: eocd + 12, size: 4))
        var cdOffset = Int(file.uint(at: eocd + 16, size: 4))
        if entryCount == 0xFFFF || cdSize == 0xFFFF_FFFF || cdOffset == 0xFFFF_FFFF {
            // ZIP64: locator right before the EOCD points at the ZIP64 EOCD record.
            let locator = eocd - 20
            guard locator >= 0, file.uint(at: locator, size: 4) == 0x0706_4B50 else {
                throw fail(file, eocd, "ZIP64 fields without a ZIP64 locator")
            }
            let rec = file.uint(at: locator + 8, size: 8)
            guard file.count >= 56, rec <= UInt64(file.count - 56), file.uint(at: Int(rec), size: 4) == 0x0606_4B50
            else {
                throw fail(file, locator, "ZIP64 end-of-central-directory record out of range")
            }
            let r = Int(rec)
            let count64 = file.uint(at: r + 32, size: 8)
            let size64 = file.uint(at: r + 40, size: 8)
            let off64 = file.uint(at: r + 48, size: 8)
            guard count64 < 1 << 32, size64 < UInt64(file.count), off64 < UInt64(file.count) else {
                throw fail(file, r, "ZIP64 central directory fields out of range")
            }
            entryCount = Int(count64)
            cdSize = Int(size64)
            cdOffset = Int(off64)
        }
        guard cdOffset <= file.count, cdSize <= file.count - cdOffset else {
            throw fail(file, eocd, "central directory (offset \(cdOffset), \(cdSize) bytes) lies outside the file")
        }
        return (entryCount, cdOffset, cdSize)
    }

    /// The central-directory entry at `p` and its stored data (checked against the local header and the
    /// file), and where the next entry starts.
    static func entry(_ file: MappedFile, at p: Int, directoryEnd cdEnd: Int) throws -> (ZipEntry, next: Int) {
        guard p + 46 <= cdEnd, file.uint(at: p, size: 4) == 0x0201_4B50 else {
            throw fail(file, p, "bad central directory entry")
        }
        let method = file.uint(at: p + 10, size: 2)
        let crc = UInt32(file.uint(at: p + 16, size: 4))
        var compressedSize = file.uint(at: p + 20, size: 4)
        var size = file.uint(at: p + 24, size: 4)
        let nameLength = Int(file.uint(at: p + 28, size: 2))
        let extraLength = Int(file.uint(at: p + 30, size: 2))
        let commentLength = Int(file.uint(at: p + 32, size: 2))
        var localOffset = file.uint(at: p + 42, size: 4)
        let next = p + 46 + nameLength + extraLength + commentLength
        guard next <= cdEnd else { throw fail(file, p, "central directory entry runs past the directory") }
        guard let name = String(validating: file.slice((p + 46)..<(p + 46 + nameLength)), as: UTF8.self) else {
            throw fail(file, p + 46, "entry name is not UTF-8")
        }
        // ZIP64 extra field (id 1): the 0xFFFFFFFF fields, in order size, compressed, offset.
        var e = p + 46 + nameLength
        let extraEnd = e + extraLength
        while e + 4 <= extraEnd {
            let id = file.uint(at: e, size: 2)
            let len = Int(file.uint(at: e + 2, size: 2))
            guard e + 4 + len <= extraEnd else { throw fail(file, e, "extra field of '\(name)' runs past its entry") }
            if id == 1 {
                var q = e + 4
                func take() throws -> UInt64 {
                    guard q + 8 <= e + 4 + len else { throw fail(file, q, "short ZIP64 extra field in '\(name)'") }
                    defer { q += 8 }
                    return file.uint(at: q, size: 8)
                }
                if size == 0xFFFF_FFFF { size = try take() }
                if compressedSize == 0xFFFF_FFFF { compressedSize = try take() }
                if localOffset == 0xFFFF_FFFF { localOffset = try take() }
            }
            e += 4 + len
        }
        guard file.count >= 30, localOffset <= UInt64(file.count - 30) else {
            throw fail(file, p, "local header of '\(name)' lies outside the file")
        }
        let lo = Int(localOffset)
        guard lo + 30 <= file.count, file.uint(at: lo, size: 4) == 0x0403_4B50 else {
            throw fail(file, lo, "bad local header for '\(name)'")
        }
        let dataStart = lo + 30 + Int(file.uint(at: lo + 26, size: 2)) + Int(file.uint(at: lo + 28, size: 2))
        if method != 0 {
            throw CheckpointError.unsupported(
                path: file.path,
                reason:
                    "zip entry '\(name)' is compressed (method \(method)); torch.save writes stored entries — re-save with torch.save or as safetensors"
            )
        }
        guard compressedSize == size, dataStart <= file.count, size <= UInt64(file.count - dataStart) else {
            throw fail(file, lo, "data of '\(name)' (\(size) bytes at \(dataStart)) runs past the end of the file")
        }
        return (ZipEntry(name: name, dataRange: dataStart..<(dataStart + Int(size)), crc: crc), next)
    }
}
