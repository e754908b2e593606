// hcore's entry point: parse, run, and turn errors into the documented exit codes (README "Exit codes"):
// a parse error is usage (2); an error from a command ends with its kind's code (Failures); SIGINT is 130.
import ArgumentParser
import Failures
import Foundation

signal(SIGINT) { _ in
    FileHandle.standardError.write(Data("\nhcore: interrupted\n".utf8))
    exit(FailureKind.interrupted.rawValue)
}

/// Parse errors and help requests: ArgumentParser's own message (with usage); exit 0 for help, else 2.
func exitParsing(_ error: Error) -> Never {
    let success = HCore.exitCode(for: error) == .success
    let message = HCore.fullMessage(for: error)
    (success ? FileHandle.standardOutput : FileHandle.standardError).write(Data((message + "\n").utf8))
    exit(success ? 0 : FailureKind.usage.rawValue)
}

var command: ParsableCommand
do { command = try HCore.parseAsRoot() } catch { exitParsing(error) }
do {
    try command.run()
} catch let error as ClassifiedError {
    FileHandle.standardError.write(Data("hcore: error: \(error)\n".utf8))
    exit(error.kind.rawValue)
} catch {
    // ArgumentParser's own errors (help requests, validation) carry its classification.
    if [ExitCode.success, .validationFailure].contains(HCore.exitCode(for: error)) { exitParsing(error) }
    FileHandle.standardError.write(Data("hcore: internal error (please report it): \(error)\n".utf8))
    exit(FailureKind.internalError.rawValue)
}
