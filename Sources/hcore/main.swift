// hcore's entry point: parse, run, map errors to the documented exit codes.
import ArgumentParser
import Foundation

signal(SIGINT) { _ in
    FileHandle.standardError.write(Data("\nhcore: interrupted\n".utf8))
    exit(Exit.interrupted.rawValue)
}

do {
    let args = Array(CommandLine.arguments.dropFirst())
    if args.count >= 2 && args[0] == "eval" && args[1] == "merge" {
        let merge = try Eval.Merge.parse(Array(args.dropFirst(2)))
        try merge.run()
        exit(0)
    }
    var command = try HCore.parseAsRoot()
    try command.run()
} catch let e as CleanExit {
    HCore.exit(withError: e)
} catch {
    let code = HCore.exitCode(for: error)
    if code == .success || code == .validationFailure || error is ValidationError || "\(type(of: error))".contains("CommandError") {
        // Parsing problems: ArgumentParser's message (with usage), exit 2.
        let message = HCore.fullMessage(for: error)
        FileHandle.standardError.write(Data((message + "\n").utf8))
        exit(code == .success ? 0 : Exit.usage.rawValue)
    }
    FileHandle.standardError.write(Data("hcore: error: \(error)\n".utf8))
    exit(exitCode(for: error).rawValue)
}
