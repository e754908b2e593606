// hcore's entry point: parse, run, and turn errors into the documented exit codes (README "Exit codes"):
// a parse error is usage (2); an error from a command ends with its kind's code (Failures); SIGINT is 130.
import ArgumentParser
import Eval
import Failures
import Foundation

reserveStandardDescriptors()
InputFiles.recordInputs()
installSignalHandlers()

/// Parse errors and help requests: ArgumentParser's own message (with usage); exit 0 for help, else 2.
func exitParsing(_ error: Error) -> Never {
    let success = HCore.exitCode(for: error) == .success
    let message = HCore.fullMessage(for: error)
    if success { emit(message) } else { warn(message) }
    exit(success ? 0 : FailureKind.usage.rawValue)
}

/// An error as the user reads it: a library's setting named by its flag, a hint where a flag helps.
func phrased(_ error: ClassifiedError) -> String {
    if let setting = error as? SettingError { return setting.phrased }
    if case .badRow = error as? DataError { return "\(error) (--skip-bad-rows skips such rows)" }
    return "\(error)"
}

var command: ParsableCommand
do {
    // the reference's spellings
    let (arguments, notes) = try ReferenceFlags.translate(Array(CommandLine.arguments.dropFirst()))
    for note in notes { warn("hcore: \(note)") }
    command = try HCore.parseAsRoot(arguments)
    try NumericFlags.check(command, arguments: arguments)
} catch let error as ClassifiedError {
    warn("hcore: error: \(phrased(error))")
    exit(error.kind.rawValue)
} catch { exitParsing(error) }
do {
    try command.run()
} catch let error as ClassifiedError {
    warn("hcore: error: \(phrased(error))")
    exit(error.kind.rawValue)
} catch {
    // ArgumentParser's own errors (help requests, validation) carry its classification.
    if [ExitCode.success, .validationFailure].contains(HCore.exitCode(for: error)) { exitParsing(error) }
    warn("hcore: internal error (please report it): \(error)")
    exit(FailureKind.internalError.rawValue)
}
