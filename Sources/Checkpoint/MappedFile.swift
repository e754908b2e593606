// A read-only memory map of a whole file. Large checkpoints are read in place; nothing is copied until a
// tensor is converted to fp32.
import Failures
import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

public final class MappedFile: @unchecked Sendable {
    public let path: String
    public let count: Int
    public let bytes: UnsafeRawPointer
    private let mapped: Bool

    public init(path: String) throws {
        self.path = path
        let (fd, size) = try InputFiles.openRegular(path)
        defer { close(fd) }
        count = size
        if count == 0 {
            bytes = UnsafeRawPointer(UnsafeMutableRawPointer.allocate(byteCount: 1, alignment: 64))
            mapped = false
            return
        }
        let p = mmap(nil, count, PROT_READ, MAP_PRIVATE, fd, 0)
        if p == MAP_FAILED || p == nil {
            throw CheckpointError.cannotOpen(path: path, reason: "mmap failed: \(String(cString: strerror(errno)))")
        }
        bytes = UnsafeRawPointer(p!)
        mapped = true
    }

    /// Wraps bytes already in memory (tests, decompressed data).
    public init(data: [UInt8], name: String) {
        path = name
        count = data.count
        let p = UnsafeMutableRawPointer.allocate(byteCount: max(1, data.count), alignment: 64)
        data.withUnsafeBytes { if let b = $0.baseAddress { p.copyMemory(from: b, byteCount: data.count) } }
        bytes = UnsafeRawPointer(p)
        mapped = false
    }

    public subscript(_ i: Int) -> UInt8 { bytes.load(fromByteOffset: i, as: UInt8.self) }

    /// Little-endian unsigned integer of `size` bytes at `offset`; caller has checked the range.
    public func uint(at offset: Int, size: Int) -> UInt64 {
        var v: UInt64 = 0
        for i in 0..<size { v |= UInt64(self[offset + i]) << (8 * UInt64(i)) }
        return v
    }

    public func slice(_ range: Range<Int>) -> [UInt8] {
        Array(UnsafeRawBufferPointer(start: bytes + range.lowerBound, count: range.count))
    }

    /// Tells the kernel the pages of `range` will not be needed again (after packing weights).
    public func release(_ range: Range<Int>) {
        guard mapped else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = (range.lowerBound + page - 1) / page * page
        let end = range.upperBound / page * page
        if end > start { madvise(UnsafeMutableRawPointer(mutating: bytes + start), end - start, Int32(MADV_DONTNEED)) }
    }

    deinit {
        if mapped { munmap(UnsafeMutableRawPointer(mutating: bytes), count) } else { bytes.deallocate() }
    }
}
