// What hcore reads: regular files, and folders walked without leaving them through a link or going round a
// loop. A device (/dev/zero never ends), a FIFO (its open blocks until a writer comes) or a socket named as an
// input is refused by name before a byte is read; a regular file larger than what its reader can take is
// refused before it is allocated.

import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// An input that is not a regular file, cannot be opened, or is larger than its reader takes (exit 3).
public struct InputFileError: ClassifiedError {
    public let path: String
    public let reason: String
    public var kind: FailureKind { .badInput }
    public var description: String { "\(path): \(reason)" }
}

public enum InputFiles {
    /// The files (device, inode, status change) this process has read as inputs, once `recordInputs` ran (the CLI
    /// calls it at start; libraries used elsewhere keep no record): writers refuse to replace one of them, so an
    /// output flag naming an input (`--csv` = `--data`, `--out` = the activations read) cannot destroy it.
    static let inputsRead = Mutex<Set<[UInt64]>?>(nil)

    public static func recordInputs() { inputsRead.withLock { $0 = $0 ?? [] } }

    /// Whether `path` (links followed) is a file this process read as an input, unchanged since.
    public static func wasRead(_ path: String) -> Bool {
        var st = stat()
        guard stat(path, &st) == 0 else { return false }
        return inputsRead.withLock { $0?.contains(identity(st)) ?? false }
    }

    /// A file's identity as read: device, inode and its last status change, so that an inode freed by a deleted
    /// input (a store replaced by its compaction) and given to a new file is not taken for the input.
    static func identity(_ st: stat) -> [UInt64] {
        [
            UInt64(st.st_dev), UInt64(st.st_ino), UInt64(bitPattern: Int64(st.st_ctim.tv_sec)),
            UInt64(st.st_ctim.tv_nsec),
        ]
    }

    /// The most any whole-file reader takes into memory (the weights are mapped, never read).
    public static let readLimit = 4 << 30

    /// An open descriptor of `path` once it is known to be a regular file (links followed), with its size.
    /// O_NONBLOCK keeps the open of a FIFO from waiting for a writer; the caller closes the descriptor.
    public static func openRegular(_ path: String) throws -> (fd: Int32, size: Int) {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else {
            let reason = errno == ELOOP ? "a loop of symbolic links" : String(cString: strerror(errno))
            throw InputFileError(path: path, reason: "cannot open: \(reason)")
        }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            close(fd)
            throw InputFileError(path: path, reason: "cannot stat: \(String(cString: strerror(errno)))")
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            close(fd)
            throw InputFileError(path: path, reason: "is \(describe(mode: st.st_mode)), not a regular file")
        }
        inputsRead.withLock { _ = $0?.insert(identity(st)) }
        return (fd, Int(st.st_size))
    }

    /// The whole of a regular file (at most `limit` bytes).
    public static func read(_ path: String, limit: Int = readLimit) throws -> [UInt8] {
        let (fd, size) = try openRegular(path)
        defer { close(fd) }
        guard size <= limit else {
            throw InputFileError(path: path, reason: "is \(size) bytes; this reader takes at most \(limit)")
        }
        var bytes = [UInt8](repeating: 0, count: size)
        var done = 0
        while done < size {
            let n = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + done, size - done, off_t(done)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                throw InputFileError(path: path, reason: "read failed after \(done) of \(size) bytes")
            }
            done += n
        }
        return bytes
    }

    /// `read` when the file exists, nil when nothing is there (a dangling link counts as nothing).
    public static func readIfPresent(_ path: String, limit: Int = readLimit) throws -> [UInt8]? {
        var st = stat()
        guard stat(path, &st) == 0 || errno != ENOENT else { return nil }
        return try read(path, limit: limit)
    }

    /// What a path is, for a refusal: "a character device", "a FIFO", …
    public static func describe(mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFDIR: return "a folder"
        case S_IFCHR: return "a character device"
        case S_IFBLK: return "a block device"
        case S_IFIFO: return "a FIFO (named pipe)"
        case S_IFSOCK: return "a socket"
        default: return "not a regular file"
        }
    }

    /// The entries of a folder that a walk may enter or read, in name order: regular files (through links,
    /// each distinct file once) and real subfolders (never a link to one, so a walk cannot loop or leave).
    /// Special files are refused by name.
    public static func entries(of folder: String) throws -> (files: [String], folders: [String]) {
        let names: [String]
        do { names = try FileManager.default.contentsOfDirectory(atPath: folder).sorted() } catch {
            throw InputFileError(path: folder, reason: "cannot list the folder")
        }
        var files: [String] = []
        var folders: [String] = []
        var seen = Set<[UInt64]>()
        for name in names {
            let path = folder + "/" + name
            var l = stat()
            var st = stat()
            guard lstat(path, &l) == 0 else { continue }
            if (l.st_mode & S_IFMT) == S_IFDIR {
                folders.append(name)
                continue
            }
            guard stat(path, &st) == 0 else { continue }  // a dangling link: nothing there
            switch st.st_mode & S_IFMT {
            case S_IFREG:
                if seen.insert([UInt64(st.st_dev), UInt64(st.st_ino)]).inserted { files.append(name) }
            case S_IFDIR: continue  // a link to a folder is not followed
            default: throw InputFileError(path: path, reason: "is \(describe(mode: st.st_mode)), not a regular file")
            }
        }
        return (files, folders)
    }
}
