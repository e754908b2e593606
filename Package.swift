import Foundation
// swift-tools-version:6.0
//
// hcore — run, prune and dissect finetuned BERT classifiers on CPUs.
//
// Arrows run one way: Kernels, Checkpoint, Tokenizer ← Model ← Eval ← (Circuits, Prune, Train) ← Report ← Study ← hcore;
// Store (on Checkpoint) beside Model; Optimization under Prune and Train; Failures (the kinds of error behind
// the exit codes) under all of them.
//
// Release builds compile the numeric targets for a CPU so that SIMD16<Float> becomes real vector code
// (without a target CPU Swift lowers `addProduct` to scalar fmaf calls):
//   * default: `-march=native` — the machine that builds is the machine that runs (like llama.cpp);
//   * HCORE_PORTABLE=1 in the environment: x86-64-v3 (AVX2 + FMA) on x86-64, plain armv8 (NEON) on arm64,
//     for binaries that must run on other machines of the same architecture.
// The GEMM micro-kernel shape follows the vector width: HCORE_AVX512 is defined only when the build
// targets AVX-512 (native build on a CPU whose /proc/cpuinfo lists avx512f).
import PackageDescription

let environment = ProcessInfo.processInfo.environment
let portable = environment["HCORE_PORTABLE"].map { $0 != "0" && !$0.isEmpty } ?? false
// scripts/package.sh records the commit a distributed binary is built from (`hcore --version`); only hex digits.
let commit = String((environment["HCORE_COMMIT"] ?? "").filter(\.isHexDigit).prefix(40))

func hostHasAVX512() -> Bool {
    #if arch(x86_64)
        guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return false }
        return info.contains(" avx512f")
    #else
        return false
    #endif
}

var numericFlags: [SwiftSetting] = []
#if arch(x86_64)
    numericFlags.append(
        .unsafeFlags(
            ["-Xcc", portable ? "-march=x86-64-v3" : "-march=native"],
            .when(configuration: .release)))
    if !portable && hostHasAVX512() {
        numericFlags.append(.define("HCORE_AVX512", .when(configuration: .release)))
    }
#elseif arch(arm64)
    if !portable {
        numericFlags.append(.unsafeFlags(["-Xcc", "-mcpu=native"], .when(configuration: .release)))
    }
#endif

let package = Package(
    name: "hcore",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "hcore", targets: ["hcore"]),
        .executable(name: "hcore-bench", targets: ["hcore-bench"]),
        // Every untrusted-input parser behind one signature, for Fuzz/ (libFuzzer) and the corpus replay tests.
        .library(name: "ParserHarness", targets: ["ParserHarness"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0")
    ],
    targets: [
        // The system libzstd (apt-get install libzstd-dev).
        .systemLibrary(
            name: "CZstd", path: "Sources/CZstd", pkgConfig: "libzstd",
            providers: [.apt(["libzstd-dev"]), .brew(["zstd"])]),
        // What kind of failure an error is (→ the CLI's exit codes); every library's error type conforms.
        .target(name: "Failures"),
        // GEMM, attention, LayerNorm, GELU, softmax and their backward passes; the thread pool.
        .target(name: "Kernels", swiftSettings: numericFlags),
        // Third-party formats: safetensors, torch zip and its pickles, Arrow IPC, JSON, config.json, zstd,
        // the Hugging Face tensor names.
        .target(name: "Checkpoint", dependencies: ["CZstd", "Failures"]),
        // hcore's own subnetwork store: its format, the locked file, merge and compaction.
        .target(name: "Store", dependencies: ["Checkpoint", "Failures"]),
        .target(name: "Tokenizer", dependencies: ["Failures"]),
        // BERT: weights, blocks, the one forward/backward composition, plans, masks, mean ablation.
        .target(
            name: "Model", dependencies: ["Kernels", "Checkpoint", "Tokenizer", "Failures"],
            swiftSettings: numericFlags),
        // AdamW, the warm-up + linear-decay schedule, global-norm clipping: pruning's (Double) and fine-tuning's.
        .target(name: "Optimization"),
        // Datasets, metrics, many-subnetwork evaluation, the eval document, the store's binding to a model.
        .target(name: "Eval", dependencies: ["Model", "Store", "Kernels", "Checkpoint", "Tokenizer", "Failures"]),
        .target(
            name: "Circuits", dependencies: ["Model", "Eval", "Store", "Checkpoint", "Kernels", "Failures"],
            swiftSettings: numericFlags),
        // L0 hard-concrete pruning: gates, mask gradients, the Lagrangian loop, runs into a store, importance.
        .target(
            name: "Prune",
            dependencies: [
                "Model", "Eval", "Store", "Kernels", "Optimization", "Tokenizer", "Checkpoint", "Failures",
            ],
            swiftSettings: numericFlags),
        // Weight gradients, AdamW, fine-tuning loop; writes Hugging Face folders.
        .target(
            name: "Train",
            dependencies: ["Model", "Eval", "Store", "Kernels", "Optimization", "Checkpoint", "Tokenizer", "Failures"],
            swiftSettings: numericFlags),
        // The paper's figures from numbers alone (the reference's results files, hcore's eval documents), as SVG.
        .target(name: "Figures", dependencies: ["Eval", "Store", "Checkpoint", "Failures", "Kernels"]),
        // Figures and index.html of a study (eval document + store + model).
        .target(
            name: "Report",
            dependencies: [
                "Figures", "Circuits", "Eval", "Store", "Model", "Checkpoint", "Kernels", "Tokenizer", "Failures",
            ],
            swiftSettings: numericFlags),
        .target(
            name: "ParserHarness",
            dependencies: ["Checkpoint", "Store", "Eval", "Model", "Tokenizer", "Figures", "Prune"]),
        // data/hans/*.zst compiled into the binary (C23 #embed), so `hcore demo` runs from any directory.
        .target(name: "EmbeddedHANS"),
        .target(name: "BuildInfo", cSettings: [.define("HCORE_COMMIT", to: "\"\(commit)\"")]),
        // The demo's pipeline: its task, then every stage above, in order.
        .target(
            name: "Study",
            dependencies: [
                "EmbeddedHANS", "Eval", "Model", "Prune", "Train", "Report", "Store", "Checkpoint", "Tokenizer",
                "Failures",
            ]),
        .executableTarget(
            name: "hcore",
            dependencies: [
                "Model", "Eval", "Circuits", "Prune", "Train", "Report", "Figures", "Study", "Store", "Checkpoint",
                "Tokenizer", "Kernels", "Failures", "BuildInfo",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),
        .executableTarget(
            name: "hcore-bench",
            dependencies: ["Model", "Kernels", "Eval", "Prune", "Circuits", "Store", "Checkpoint", "Tokenizer"],
            path: "Benchmarks/hcore-bench",
            swiftSettings: numericFlags),
        // Repository root, seeded random numbers, assertClose, naive twins: shared by every test target.
        .target(
            name: "TestSupport", dependencies: ["Kernels", "Checkpoint", "Model", "Tokenizer"],
            path: "Tests/TestSupport"),
        .testTarget(name: "KernelsTests", dependencies: ["Kernels", "TestSupport"], swiftSettings: numericFlags),
        .testTarget(
            name: "CheckpointTests", dependencies: ["TestSupport", "Checkpoint", "Failures", "ParserHarness"]),
        .testTarget(name: "StoreTests", dependencies: ["TestSupport", "Store", "Checkpoint", "Failures"]),
        .testTarget(name: "TokenizerTests", dependencies: ["TestSupport", "Tokenizer", "Checkpoint"]),
        .testTarget(
            name: "ModelTests", dependencies: ["TestSupport", "Model", "Checkpoint", "Kernels"],
            swiftSettings: numericFlags),
        .testTarget(
            name: "PruneTests",
            dependencies: ["TestSupport", "Prune", "Model", "Optimization", "Checkpoint", "Tokenizer", "Kernels"],
            swiftSettings: numericFlags),
        .testTarget(
            name: "TrainTests", dependencies: ["TestSupport", "Train", "Model", "Checkpoint", "Tokenizer", "Kernels"],
            swiftSettings: numericFlags),
        .testTarget(
            name: "CircuitsTests",
            dependencies: ["TestSupport", "Circuits", "Eval", "Store", "Kernels", "Model", "Checkpoint", "Tokenizer"],
            swiftSettings: numericFlags),
        .testTarget(
            name: "ReportTests",
            dependencies: ["TestSupport", "Report", "Circuits", "Eval", "Store", "Model", "Checkpoint"]),
        .testTarget(name: "FiguresTests", dependencies: ["TestSupport", "Figures", "Eval", "Store", "Checkpoint"]),
        .testTarget(
            name: "EvalTests", dependencies: ["TestSupport", "Eval", "Store", "Model", "Checkpoint", "Tokenizer"],
            swiftSettings: numericFlags),
        .testTarget(name: "StudyTests", dependencies: ["TestSupport", "Study", "Eval", "Checkpoint"]),
        // Runs the built hcore binary; depends on it so that it is built first.
        .testTarget(name: "CLITests", dependencies: ["TestSupport", "hcore", "Store", "Checkpoint"]),
    ]
)
