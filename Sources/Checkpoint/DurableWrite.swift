// How hcore writes files so that nothing is lost or half-written: a new version goes to a temporary file
// beside the target, is fsync'ed, renamed over the target, and the folder is fsync'ed so the rename itself
// survives a power cut. Only a regular file (or nothing) is replaced that way: a symlink is followed to its
// target, and a device or FIFO (/dev/stdout, a pipe) is written directly — never replaced by a file.
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Writes `bytes` to `path` durably (see above); on failure the old file is untouched.
public func writeAtomically(_ bytes: [UInt8], to path: String) throws {
    let target = resolvedTarget(path)
    var st = stat()
    if lstat(target, &st) == 0, (st.st_mode & S_IFMT) != S_IFREG {
        guard (st.st_mode & S_IFMT) != S_IFDIR else {
            throw CheckpointError.writeFailed(path: path, reason: "is a folder")
        }
        return try writeDirectly(bytes, to: target, shownAs: path)
    }
    let tmp = try writeTemporary(bytes, beside: target, shownAs: path)
    guard rename(tmp, target) == 0 else {
        let reason = String(cString: strerror(errno))
        unlink(tmp)
        throw CheckpointError.writeFailed(path: path, reason: reason)
    }
    try syncDirectory(of: target)
}

/// Writes a file that must not exist yet: if another process creates `path` first, this one fails with
/// "already exists" instead of replacing it (link(2) publishes the complete file atomically).
public func writeNew(_ bytes: [UInt8], to path: String) throws {
    let tmp = try writeTemporary(bytes, beside: path, shownAs: path)
    defer { unlink(tmp) }
    guard link(tmp, path) == 0 else {
        let reason =
            errno == EEXIST
            ? "a file already exists there; remove it or choose another name" : String(cString: strerror(errno))
        throw CheckpointError.writeFailed(path: path, reason: reason)
    }
    try syncDirectory(of: path)
}

/// fsync of the folder holding `path`, so a rename or link in it is durable.
package func syncDirectory(of path: String) throws {
    let folder = (path as NSString).deletingLastPathComponent
    let fd = open(folder.isEmpty ? "." : folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    guard fd >= 0 else { return }  // some filesystems cannot open folders; the rename is still atomic
    defer { close(fd) }
    _ = fsync(fd)
}

/// A symlink's final target (relative links resolved against their folder); other paths unchanged.
func resolvedTarget(_ path: String) -> String {
    var current = path
    for _ in 0..<40 {
        guard let dest = try? FileManager.default.destinationOfSymbolicLink(atPath: current) else { return current }
        current =
            dest.hasPrefix("/")
            ? dest : ((current as NSString).deletingLastPathComponent as NSString).appendingPathComponent(dest)
    }
    return current
}

/// The process's umask, read once: from /proc/self/status where the kernel reports it (no race with other
/// threads), else by setting and restoring it.
let processUmask: mode_t = {
    if let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
        let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Umask:") }),
        let mask = mode_t(line.dropFirst("Umask:".count).trimmingCharacters(in: .whitespaces), radix: 8)
    {
        return mask
    }
    let mask = umask(0o022)
    umask(mask)
    return mask
}()

/// The mode a new file gets, as open(2) with 0666 would give it: 0666 without the umask's bits (mkstemp makes
/// 0600, which nobody else in a group could read).
public var newFileMode: mode_t { 0o666 & ~processUmask }

/// `bytes` in a fresh temporary file beside `path`, fsync'ed, with the umask's mode; returns its path.
func writeTemporary(_ bytes: [UInt8], beside path: String, shownAs shown: String) throws -> String {
    var template = Array((path + ".tmp-\(getpid())-XXXXXX").utf8CString)
    let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
    guard fd >= 0 else { throw CheckpointError.writeFailed(path: shown, reason: String(cString: strerror(errno))) }
    let tmp = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    do {
        guard fchmod(fd, newFileMode) == 0 else {
            throw CheckpointError.writeFailed(path: shown, reason: "fchmod: \(String(cString: strerror(errno)))")
        }
        try writeAll(fd, bytes, shownAs: shown)
        guard fsync(fd) == 0 else {
            throw CheckpointError.writeFailed(path: shown, reason: "fsync: \(String(cString: strerror(errno)))")
        }
        close(fd)
        return tmp
    } catch {
        close(fd)
        unlink(tmp)
        throw error
    }
}

func writeDirectly(_ bytes: [UInt8], to path: String, shownAs shown: String) throws {
    let fd = open(path, O_WRONLY | O_CLOEXEC)
    guard fd >= 0 else { throw CheckpointError.writeFailed(path: shown, reason: String(cString: strerror(errno))) }
    defer { close(fd) }
    try writeAll(fd, bytes, shownAs: shown)
}

/// write(2) until every byte is out (short writes and EINTR retried); ENOSPC and the like throw.
public func writeAll(_ fd: Int32, _ bytes: [UInt8], shownAs shown: String) throws {
    var done = 0
    while done < bytes.count {
        let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + done, bytes.count - done) }
        if n < 0 {
            if errno == EINTR { continue }
            throw CheckpointError.writeFailed(path: shown, reason: String(cString: strerror(errno)))
        }
        if n == 0 { throw CheckpointError.writeFailed(path: shown, reason: "the device accepts no more bytes") }
        done += n
    }
}

/// Creates `path` (and its parents) as an output folder; failure is a write failure naming it (exit 5).
public func makeFolder(_ path: String) throws {
    do { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) } catch {
        throw CheckpointError.writeFailed(
            path: path, reason: "cannot create the folder: \((error as NSError).localizedDescription)")
    }
}
