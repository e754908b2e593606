// One libFuzzer entry point for all parsers; HCORE_FUZZ_TARGET chooses which (Sources/ParserHarness lists
// them). A parser may throw — that is the expected answer to garbage — but must never crash, hang or
// allocate without bound. Built with -parse-as-library; libFuzzer's driver is entered from the target's
// entry symbol (below).
import Foundation
import ParserHarness

enum Selected {
    static let parse: @Sendable ([UInt8]) -> Void = {
        let name = ProcessInfo.processInfo.environment["HCORE_FUZZ_TARGET"] ?? ""
        guard let p = ParserHarness.targets[name] else {
            FileHandle.standardError.write(
                Data(
                    "set HCORE_FUZZ_TARGET to one of: \(ParserHarness.targets.keys.sorted().joined(separator: ", "))\n"
                        .utf8))
            exit(2)
        }
        return p
    }()
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    Selected.parse(Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}

// SwiftPM links an executable's entry point as `<target>_main`; hand control to libFuzzer's driver there.
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>, Int) -> CInt
) -> CInt

@_cdecl("hcore_fuzz_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var count = argc
    var arguments = argv
    return LLVMFuzzerRunDriver(&count, &arguments) { data, size in fuzz(data, size) }
}
