// How hcore writes files so that nothing is lost or half-written: a new version goes to a temporary file
// beside the target, is fsync'ed, renamed over the target, and the folder is fsync'ed so the rename itself
// survives a power cut. Only a regular file (or nothing) is replaced that way: a symlink is followed to its
// target, and a device or FIFO (/dev/stdout, a pipe) is written directly — never replaced by a file.
import Failures
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Writes `bytes` to `path` durably (see above); on failure the old file is untouched. A file this process read
/// as an input is not replaced unless `replacingInput` (a resumed trace rewrites its own kept lines).
public func writeAtomically(_ bytes: [UInt8], to path: String, replacingInput: Bool = false) throws {
    guard replacingInput || !InputFiles.wasRead(path) else {
        throw CheckpointError.writeFailed(
            path: path, reason: "is one of this command's inputs: writing there would destroy it; choose another output"
        )
    }
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

/// Removes the temporary files writers left beside `path` when they were killed mid-write (`PATH.tmp-PID-…` of
/// `writeAtomically`, and the other `markers` a writer uses) whose process no longer runs; a live one's stay.
public func removeStaleTemporaries(of path: String, markers: [String] = [".tmp-"]) {
    let folder = folderOf(path)
    let base = (path as NSString).lastPathComponent
    for name in (try? FileManager.default.contentsOfDirectory(atPath: folder.isEmpty ? "." : folder)) ?? [] {
        for marker in markers where name.hasPrefix(base + marker) {
            let rest = name.dropFirst(base.count + marker.count)
            guard let pid = Int32(rest.prefix { $0.isNumber }), pid > 0, pid != getpid(), kill(pid, 0) != 0,
                errno == ESRCH
            else { continue }
            unlink(folder.isEmpty ? name : folder + "/" + name)
        }
    }
}

/// The folder part of a path ("" for a bare name): Foundation's deletingLastPathComponent traps on a
/// one-character name ("0"), which an output flag can be.
public func folderOf(_ path: String) -> String {
    var p = Substring(path)
    while p.count > 1 && p.hasSuffix("/") { p = p.dropLast() }
    guard let slash = p.lastIndex(of: "/") else { return "" }
    return slash == p.startIndex ? "/" : String(p[..<slash])
}

/// fsync of the folder holding `path`, so a rename or link in it is durable.
package func syncDirectory(of path: String) throws {
    let folder = folderOf(path)
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
            ? dest : (folderOf(current) as NSString).appendingPathComponent(dest)
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
    _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
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
    var st = stat()
    if stat(path, &st) == 0, (st.st_mode & S_IFMT) != S_IFDIR {
        let what = (st.st_mode & S_IFMT) == S_IFREG ? "a file" : InputFiles.describe(mode: st.st_mode)
        throw CheckpointError.writeFailed(path: path, reason: "is \(what), not a folder: name a folder to write into")
    }
    do { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) } catch {
        throw CheckpointError.writeFailed(
            path: path, reason: "cannot create the folder: \((error as NSError).localizedDescription)")
    }
}

/// The files that together make a Hugging Face model folder: a reader takes whichever of them it finds, so one
/// left from another model (a tokenizer.json beside a new vocab.txt) changes what the folder computes.
public let modelFolderFiles = [
    "config.json", "model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
    "pytorch_model.bin.index.json", "vocab.txt", "tokenizer.json", "tokenizer_config.json",
    "special_tokens_map.json", "added_tokens.json",
]

/// A folder for one model written as several files: created when absent; an existing one must be empty unless
/// `replacing`, and then the model files in it are removed first. Never a folder of `inputs` (a model written
/// onto itself would be replaced by its own export).
public func makeModelFolder(_ path: String, replacing: Bool, inputs: [String]) throws {
    let real = URL(fileURLWithPath: path).resolvingSymlinksInPath().standardizedFileURL.path
    for input in inputs where URL(fileURLWithPath: input).resolvingSymlinksInPath().standardizedFileURL.path == real {
        throw CheckpointError.writeFailed(
            path: path, reason: "is the folder of the model being read (\(input)): choose another folder")
    }
    try makeFolder(path)
    let present = ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted()
    guard !present.isEmpty else { return }
    guard replacing else {
        throw SettingError(
            "replacing",
            "to write into \(path), which already holds \(present.prefix(4).joined(separator: ", "))\(present.count > 4 ? ", …" : ""): files left from another model would be read with the new ones"
        )
    }
    for name in present where modelFolderFiles.contains(name) {
        guard unlink(path + "/" + name) == 0 else {
            throw CheckpointError.writeFailed(path: path + "/" + name, reason: String(cString: strerror(errno)))
        }
    }
}
