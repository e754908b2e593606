// What kind of failure an error is. Every error type of hcore's libraries conforms to ClassifiedError,
// and the CLI turns the kind into its documented exit code (README "Exit codes") in one place — never by
// reading an error's message.

import Foundation

/// The kinds of failure, with the exit code each one ends the process with.
public enum FailureKind: Int32, Sendable, CaseIterable {
    /// An unexpected internal error (a bug: please report it).
    case internalError = 1
    /// Bad flags or arguments.
    case usage = 2
    /// An input file that cannot be read, is malformed, or uses something unsupported.
    case badInput = 3
    /// Inputs that do not belong together: masks, activations or a store made for another model, wrong shapes.
    case mismatch = 4
    /// An output that could not be written.
    case writeFailed = 5
    /// Interrupted (SIGINT).
    case interrupted = 130
}

/// An error that says what kind of failure it is.
public protocol ClassifiedError: Error, CustomStringConvertible {
    var kind: FailureKind { get }
}

extension FailureKind {
    /// The kind of any error: its own for a ClassifiedError, otherwise an internal error.
    public static func of(_ error: Error) -> FailureKind {
        (error as? ClassifiedError)?.kind ?? .internalError
    }
}

/// A setting a caller gave that a library cannot use — outside its range, or contradicting another (exit code 2).
/// `setting` names it as the library's API does ("threshold", "targetSparsities"); the CLI spells it as its flag.
public struct SettingError: ClassifiedError {
    public let setting: String
    public let problem: String
    public init(_ setting: String, _ problem: String) {
        self.setting = setting
        self.problem = problem
    }
    public var kind: FailureKind { .usage }
    public var description: String { "\(setting) \(problem)" }
}

/// The process's signal policy. A closed pipe (`hcore eval … | head`) is a write failure (exit 5), not a signal.
/// SIGINT ends with 130 after one line on stderr, using only async-signal-safe calls; every store and output
/// write is a transaction or a rename, so nothing committed is lost.
public func installSignalHandlers() {
    signal(SIGPIPE, SIG_IGN)
    signal(SIGINT) { _ in
        let message: StaticString = "\nhcore: interrupted\n"
        _ = write(2, message.utf8Start, message.utf8CodeUnitCount)
        _exit(FailureKind.interrupted.rawValue)
    }
}

/// Makes sure descriptors 0, 1 and 2 are open (on /dev/null if the parent closed them: `hcore … 2>&-`), so that no
/// file hcore opens later is given one of them and receives what is meant for the terminal.
public func reserveStandardDescriptors() {
    for fd: Int32 in 0...2 where fcntl(fd, F_GETFD) == -1 {
        _ = open("/dev/null", (fd == 0 ? O_RDONLY : O_WRONLY) | O_CLOEXEC)
    }
}
