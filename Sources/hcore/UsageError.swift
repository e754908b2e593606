// Flags that contradict each other, are missing, or hold a value a command cannot take (exit code 2). Only the
// CLI knows flags: libraries throw SettingError (a setting by its API name) and the CLI phrases it here.
import ArgumentParser
import Failures

struct UsageError: ClassifiedError {
    let message: String
    init(_ message: String) { self.message = message }
    var kind: FailureKind { .usage }
    var description: String { message }
}

extension SettingError {
    /// The flag that gives `setting`: its kebab-case spelling, where it differs from the API name, from `renamed`.
    var flag: String {
        if let name = SettingError.renamed[setting] { return "--" + name }
        return "--" + setting.reduce(into: "") { out, c in out += c.isUppercase ? "-" + c.lowercased() : String(c) }
    }

    /// API names whose flag is not their kebab-case spelling.
    static let renamed: [String: String] = [:]

    /// The message as the user reads it, naming the flag.
    var phrased: String { "\(flag) \(problem)" }
}

/// `body`, with a library's SettingError phrased by its flag (for `validate()`, whose errors ArgumentParser prints).
func phrasingSettings<T>(_ body: () throws -> T) throws -> T {
    do { return try body() } catch let error as SettingError { throw UsageError(error.phrased) }
}
