// What every test target shares: where the repository and its fixtures are, reproducible random
// numbers, and one comparison that says how far apart two arrays are and where (in the spirit of ggml's
// test-backend-ops: every op against its reference, with its stated error bound).
import Foundation
import Kernels
import XCTest

/// The repository's root folder (this file is Tests/TestSupport/TestSupport.swift).
public let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

/// Tests/Fixtures.
public let fixturesFolder = repositoryRoot.appendingPathComponent("Tests/Fixtures")

/// Kernels' SplitMix64 with the float helpers tests use: the same numbers on every machine, so a failure
/// reproduces from its seed.
public struct SeededRNG: RandomNumberGenerator {
    var generator: SplitMix64
    public init(_ seed: UInt64) { generator = SplitMix64(seed: seed) }

    public mutating func next() -> UInt64 { generator.next() }

    /// Uniform in [0, 1) with 24 bits.
    public mutating func uniform() -> Float { Float(next() >> 40) / Float(1 << 24) }
    /// Uniform in [0, 1) with 53 bits.
    public mutating func uniformDouble() -> Double { Double(next() >> 11) / Double(1 << 53) }
    /// Standard normal (Box–Muller).
    public mutating func normal() -> Float {
        let u1 = max(1e-7, Double(uniform()))
        let u2 = Double(uniform())
        return Float((-2 * Foundation.log(u1)).squareRoot() * Foundation.cos(2 * .pi * u2))
    }
    public mutating func floats(_ n: Int, scale: Float = 1) -> [Float] { (0..<n).map { _ in normal() * scale } }
}

/// The largest |a[i] − b[i]|.
public func maxAbsDiff(_ a: [Float], _ b: [Float]) -> Float {
    precondition(a.count == b.count)
    return zip(a, b).map { abs($0 - $1) }.max() ?? 0
}

/// Fails unless every |actual[i] − expected[i]| ≤ bound, naming the worst element, its two values and the
/// bound; NaN anywhere fails.
public func assertClose(
    _ actual: [Float], _ expected: [Float], bound: Float, _ what: @autoclosure () -> String = "",
    file: StaticString = #filePath, line: UInt = #line
) {
    guard actual.count == expected.count else {
        XCTFail("\(what()): \(actual.count) values, expected \(expected.count)", file: file, line: line)
        return
    }
    var worst = 0
    var worstDiff: Float = -1
    for i in actual.indices {
        let d = abs(actual[i] - expected[i])
        if d.isNaN {
            XCTFail("\(what()): NaN at \(i) (\(actual[i]) vs \(expected[i]))", file: file, line: line)
            return
        }
        if d > worstDiff {
            worstDiff = d
            worst = i
        }
    }
    if worstDiff > bound {
        XCTFail(
            "\(what()): |Δ| = \(worstDiff) > \(bound) at \(worst) (\(actual[worst]) vs \(expected[worst]))", file: file,
            line: line)
    }
}

/// The texts of an SVG whose estimated extent leaves its picture: each <text>'s x, y, font-size and
/// text-anchor (inherited from the <svg> element's font-size), 0.6 em per character, lines of <tspan>s;
/// rotated texts (transform) are checked along their rotated axis. The estimate is generous for sans-serif
/// fonts, so a text inside it is inside the picture.
public func svgTextsOutside(_ svg: String) -> [String] {
    func attr(_ tag: Substring, _ name: String) -> String? {
        guard let r = tag.range(of: " \(name)=\"") else { return nil }
        return String(tag[r.upperBound...].prefix { $0 != "\"" })
    }
    guard let root = svg.range(of: "<svg")?.upperBound, let close = svg[root...].firstIndex(of: ">") else {
        return ["no <svg> element"]
    }
    let rootTag = svg[root..<close]
    let viewBox = attr(rootTag, "viewBox")?.split(separator: " ").compactMap { Double($0) }
    let width = viewBox.map { $0[2] } ?? Double(attr(rootTag, "width") ?? "") ?? 0
    let height = viewBox.map { $0[3] } ?? Double(attr(rootTag, "height") ?? "") ?? 0
    let defaultSize = Double(attr(rootTag, "font-size") ?? "") ?? 12
    var out: [String] = []
    var rest = svg[close...]
    while let start = rest.range(of: "<text") {
        guard let tagEnd = rest[start.upperBound...].firstIndex(of: ">"), let end = rest[tagEnd...].range(of: "</text>")
        else { break }
        let tag = rest[start.upperBound..<tagEnd]
        let inner = rest[rest.index(after: tagEnd)..<end.lowerBound]
        rest = rest[end.upperBound...]
        let lines = inner.components(separatedBy: "<tspan").map {
            $0.replacingOccurrences(of: #"<[^>]*>"#, with: "", options: .regularExpression)
                .replacingOccurrences(of: #"^[^>]*>"#, with: "", options: .regularExpression)
        }
        let plain = lines.map {
            $0.replacingOccurrences(of: "&amp;", with: "&").replacingOccurrences(of: "&lt;", with: "<")
                .replacingOccurrences(of: "&gt;", with: ">")
        }
        let x = Double(attr(tag, "x") ?? "0") ?? 0
        let y = Double(attr(tag, "y") ?? "0") ?? 0
        let size = Double(attr(tag, "font-size") ?? "") ?? defaultSize
        let w = Double(plain.map(\.count).max() ?? 0) * 0.6 * size
        let h = Double(plain.count) * size * 1.2
        let anchor = attr(tag, "text-anchor") ?? "start"
        let shift = anchor == "middle" ? w / 2 : anchor == "end" ? w : 0
        let rotated = attr(tag, "transform")?.contains("rotate(-90") ?? false
        let (x0, y0, x1, y1) =
            rotated
            ? (x - size, y - w + shift, x - size + h, y + shift) : (x - shift, y - size, x - shift + w, y - size + h)
        if x0 < -0.5 || y0 < -0.5 || x1 > width + 0.5 || y1 > height + 0.5 { out.append(plain.joined(separator: " ")) }
    }
    return out
}

/// The repository's root folder as a path.
public let repoRoot = repositoryRoot.path

/// The hcore binary of the configuration these tests were built in: it sits beside the test bundle
/// (`.build/<configuration>/`), which `swift build --build-tests` builds with it — never another
/// configuration's, possibly stale, binary.
public func hcoreExecutable() throws -> String {
    let bundle = URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL
    var folder = bundle.deletingLastPathComponent()
    // `swift test` runs <config>/hcorePackageTests.xctest; inside it the executable may sit deeper.
    while !folder.path.isEmpty && folder.path != "/" {
        let candidate = folder.appendingPathComponent("hcore").path
        if FileManager.default.isExecutableFile(atPath: candidate) && !candidate.hasSuffix(".xctest/hcore") {
            return candidate
        }
        if folder.lastPathComponent.hasSuffix(".xctest") || folder.lastPathComponent == "Contents"
            || folder.lastPathComponent == "MacOS"
        {
            folder = folder.deletingLastPathComponent()
            continue
        }
        break
    }
    XCTFail("no hcore binary beside the test bundle \(bundle.path): build with `swift build --build-tests`")
    throw CocoaError(.fileNoSuchFile)
}

/// A hang guard, not a timing: kills `process` if it is still running after `seconds` and reports whether it did.
/// Call `disarm()` once the process has ended.
public final class HangGuard: @unchecked Sendable {
    private let lock = NSLock()
    private var fired = false
    private var armed = true

    public init(_ process: Process, seconds: Double = 120) {
        DispatchQueue.global().asyncAfter(deadline: .now() + seconds) { [self] in
            lock.lock()
            defer { lock.unlock() }
            if armed && process.isRunning {
                fired = true
                process.terminate()
            }
        }
    }

    /// Stops the guard; true when it had to kill the process (a hang).
    @discardableResult
    public func disarm() -> Bool {
        lock.lock()
        defer { lock.unlock() }
        armed = false
        return fired
    }
}

/// The keep bits (`DropoutBits`' layout, padded as it asks) of Float dropout multipliers, each 0 or one scale.
public func dropoutBitBytes(_ m: [Float]) -> [UInt8] {
    var bytes = [UInt8](repeating: 0, count: DropoutBits.byteCount(m.count))
    for (i, v) in m.enumerated() where v != 0 { bytes[i / 8] |= 1 << UInt8(i % 8) }
    return bytes
}

/// One attention case of the kernel tests: packed sequences of `lengths` with random Q/K/V and context gradient,
/// and `run`, the forward (probabilities kept) then the backward over them.
public struct AttentionCase {
    public let heads, headDim: Int
    public let offsets, probOffsets: [Int]
    public let qkv: [Float]
    public var dctx: [Float]
    public var ld: Int { 3 * heads * headDim }
    public var tokens: Int { offsets.last! }

    public init(heads: Int, headDim d: Int, lengths: [Int], rng: inout SeededRNG) {
        (self.heads, headDim) = (heads, d)
        offsets = lengths.reduce(into: [0]) { $0.append($0.last! + $1) }
        probOffsets = attentionProbOffsets(offsets: offsets, heads: heads)
        qkv = rng.floats(offsets.last! * 3 * heads * d, scale: 0.5)
        dctx = rng.floats(offsets.last! * heads * d)
    }

    /// ctx, the kept probabilities and dqkv, with `dropout` multipliers (each 0 or `scale`) passed as keep bits.
    public func run(dropout: [Float]? = nil, scale: Float = 0, firstQueryOnly: Bool = false, threads: Int = 2) -> (
        ctx: [Float], probs: [Float], dqkv: [Float]
    ) {
        var ctx = [Float](repeating: 0, count: tokens * heads * headDim)
        var probs = [Float](repeating: 0, count: probOffsets.last!)
        var dqkv = [Float](repeating: .nan, count: tokens * ld)
        let pool = ThreadPool.sized(threads)
        dropoutBitBytes(dropout ?? []).withUnsafeBytes { m in
            let keep = dropout == nil ? nil : DropoutBits(bytes: m.baseAddress!, scale: scale)
            attention(
                qkv: qkv, ldqkv: ld, heads: heads, headDim: headDim, offsets: offsets, ctx: &ctx,
                ldctx: heads * headDim, probs: &probs, dropout: keep, firstQueryOnly: firstQueryOnly, pool: pool)
            attentionBackward(
                qkv: qkv, ldqkv: ld, probs: probs, dctx: dctx, ldctx: heads * headDim, heads: heads, headDim: headDim,
                offsets: offsets, dqkv: &dqkv, probDropout: keep, firstQueryOnly: firstQueryOnly, pool: pool)
        }
        return (ctx, probs, dqkv)
    }
}
