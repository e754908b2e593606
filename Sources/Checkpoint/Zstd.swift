// libzstd (system library): whole-buffer compression for store blocks, and transparent reading of
// .zst data files.
import CZstd
import Failures
import Foundation

public enum Zstd {
    public static func compress(_ input: [UInt8], level: Int32 = 19) -> [UInt8] {
        let bound = ZSTD_compressBound(input.count)
        var out = [UInt8](repeating: 0, count: bound)
        let n = input.withUnsafeBytes { src in
            out.withUnsafeMutableBytes { dst in
                ZSTD_compress(dst.baseAddress, bound, src.baseAddress, input.count, level)
            }
        }
        precondition(ZSTD_isError(n) == 0, "zstd compression failed: \(String(cString: ZSTD_getErrorName(n)))")
        out.removeSubrange(n...)
        return out
    }

    /// Decompresses one or more zstd frames. `limit` caps the output (damaged or hostile input).
    public static func decompress(_ input: [UInt8], limit: Int = 1 << 34, name: String = "<zstd>") throws -> [UInt8] {
        guard let dctx = ZSTD_createDCtx() else {
            throw CheckpointError.malformed(path: name, offset: nil, reason: "zstd: out of memory")
        }
        defer { ZSTD_freeDCtx(dctx) }
        var out: [UInt8] = []
        let chunk = ZSTD_DStreamOutSize()
        var buffer = [UInt8](repeating: 0, count: chunk)
        try input.withUnsafeBytes { src in
            var inBuf = ZSTD_inBuffer(src: src.baseAddress, size: input.count, pos: 0)
            var last = 0
            var outputWasFull = false
            // Feed all input; keep calling while the decoder fills whole output chunks (it may hold more).
            while inBuf.pos < inBuf.size || outputWasFull {
                let (r, produced) = buffer.withUnsafeMutableBytes { dst -> (Int, Int) in
                    var outBuf = ZSTD_outBuffer(dst: dst.baseAddress, size: chunk, pos: 0)
                    let r = ZSTD_decompressStream(dctx, &outBuf, &inBuf)
                    if ZSTD_isError(r) == 0 { out += dst[0..<outBuf.pos] }
                    return (r, outBuf.pos)
                }
                if ZSTD_isError(r) != 0 {
                    throw CheckpointError.malformed(
                        path: name, offset: nil, reason: "zstd: \(String(cString: ZSTD_getErrorName(r)))")
                }
                if out.count > limit {
                    throw CheckpointError.malformed(
                        path: name, offset: nil, reason: "zstd: output larger than \(limit) bytes")
                }
                last = r
                outputWasFull = produced == chunk
            }
            // 0 means the last frame was complete.
            if last != 0 { throw CheckpointError.malformed(path: name, offset: nil, reason: "zstd: truncated frame") }
        }
        return out
    }
}

/// Reads a whole data file; `.zst` files are decompressed transparently.
public func readDataFile(_ path: String) throws -> [UInt8] {
    let bytes = try InputFiles.read(path)
    if path.hasSuffix(".zst") { return try Zstd.decompress(bytes, limit: InputFiles.readLimit, name: path) }
    if path.hasSuffix(".gz") {
        throw CheckpointError.unsupported(
            path: path, reason: "gzip input; decompress it (gunzip) or recompress with zstd (.zst)")
    }
    return bytes
}
