// swift-tools-version:6.0
//
// libFuzzer targets for every parser of untrusted input, kept out of the main package so that a normal
// build never needs -sanitize=fuzzer. Build and run with scripts/fuzz.sh (Linux):
//   swift build -c release --package-path Fuzz -Xswiftc -sanitize=fuzzer,address
//   HCORE_FUZZ_TARGET=pickle Fuzz/.build/release/hcore-fuzz Fuzz/corpus/pickle -max_total_time=600
// The saved corpus (Fuzz/corpus) is replayed by the main package's tests (FuzzCorpusReplayTests; the targets are Sources/ParserHarness).
import PackageDescription

let package = Package(
    name: "hcore-fuzz",
    dependencies: [.package(name: "hcore", path: "..")],
    targets: [
        .executableTarget(name: "hcore-fuzz", dependencies: [.product(name: "ParserHarness", package: "hcore")],
                          swiftSettings: [.unsafeFlags(["-parse-as-library"])]),
    ]
)
