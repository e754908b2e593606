// The hcore binary end to end: predict on the golden pairs gives transformers' labels, errors give the
// documented exit codes. Runs the release binary built next to the tests (scripts/test.sh builds it).
import Foundation
import TestSupport
import XCTest

let repo = repositoryRoot.path

func hcore(_ args: [String], stdin: String? = nil, in directory: String = repo, environment: [String: String] = [:])
    throws -> (code: Int32, out: String, err: String)
{
    let candidates = [repo + "/.build/release/hcore", repo + "/.build/debug/hcore"]
    guard let exe = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
        XCTFail("hcore binary not built (swift build -c release)")
        throw NSError(domain: "hcore", code: 1)
    }
    let p = Process()
    p.executableURL = URL(fileURLWithPath: exe)
    p.arguments = args
    p.currentDirectoryURL = URL(fileURLWithPath: directory)
    if !environment.isEmpty { p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
    let o = Pipe()
    let e = Pipe()
    p.standardOutput = o
    p.standardError = e
    try p.run()
    let out = o.fileHandleForReading.readDataToEndOfFile()
    let err = e.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: out, as: UTF8.self), String(decoding: err, as: UTF8.self))
}

final class CLITests: XCTestCase {
    let minilm = repo + "/Tests/Fixtures/models/minilm-nli"

    func testPredictGivesTransformersLabelsOnGoldenPairs() throws {
        let j =
            try JSONSerialization.jsonObject(
                with: Data(contentsOf: URL(fileURLWithPath: repo + "/Tests/Fixtures/golden/minilm-nli_outputs.json")))
            as! [String: Any]
        let examples = j["examples"] as! [[String: Any]]
        var lines: [String] = []
        for ex in examples {
            let obj: [String: Any] = ["text": ex["text"] as! String, "text_pair": ex["text_pair"] as! String]
            lines.append(String(decoding: try JSONSerialization.data(withJSONObject: obj), as: UTF8.self))
        }
        let input = NSTemporaryDirectory() + "hcore-golden-pairs-\(getpid()).jsonl"
        try (lines.joined(separator: "\n") + "\n").write(toFile: input, atomically: true, encoding: .utf8)
        let r = try hcore(["predict", "--model", minilm, "--jsonl", input])
        XCTAssertEqual(r.code, 0, r.err)
        let outLines = r.out.split(separator: "\n")
        XCTAssertEqual(outLines.count, examples.count)
        // Golden labels: argmax of transformers' logits (Tests/Fixtures/golden/minilm-nli_outputs.safetensors).
        let golden = try goldenLogits()
        let names = ["entailment", "neutral", "contradiction"]
        for (i, l) in outLines.enumerated() {
            let o = try JSONSerialization.jsonObject(with: Data(l.utf8)) as! [String: Any]
            let want = (0..<3).max { golden[i * 3 + $0] < golden[i * 3 + $1] }!
            XCTAssertEqual(o["label"] as? String, names[want], "pair \(i)")
            let logits = (o["logits"] as! [NSNumber]).map(\.floatValue)
            for c in 0..<3 { XCTAssertEqual(logits[c], golden[i * 3 + c], accuracy: 1e-4) }
        }
    }

    func goldenLogits() throws -> [Float] { try goldenLogitsFromFixture() }
}

/// Reads the golden logits with a few lines of safetensors parsing (independent of hcore's reader).
func goldenLogitsFromFixture() throws -> [Float] {
    do {
        let d = try Data(
            contentsOf: URL(fileURLWithPath: repo + "/Tests/Fixtures/golden/minilm-nli_outputs.safetensors"))
        let n = d.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        let header = try JSONSerialization.jsonObject(with: d.subdata(in: 8..<(8 + n))) as! [String: Any]
        let entry = header["logits"] as! [String: Any]
        let offsets = entry["data_offsets"] as! [Int]
        let bytes = d.subdata(in: (8 + n + offsets[0])..<(8 + n + offsets[1]))
        return bytes.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
    }
}

extension CLITests {

    func testExitCodes() throws {
        XCTAssertEqual(try hcore(["predict", "--model", "/nonexistent", "a"]).code, 3)
        XCTAssertEqual(try hcore(["predict", "--model", minilm]).code, 2)
        XCTAssertEqual(try hcore(["predict", "--bogus-flag"]).code, 2)
        XCTAssertEqual(try hcore(["--help"]).code, 0)
        let badMask = NSTemporaryDirectory() + "hcore-bad-mask-\(getpid()).json"
        try #"{"heads": [[1, 1]], "mlps": [1]}"#.write(toFile: badMask, atomically: true, encoding: .utf8)
        let r = try hcore(["predict", "--model", minilm, "--mask", badMask, "--zero-ablation", "a", "b"])
        XCTAssertEqual(r.code, 4, r.err)
        XCTAssert(r.err.contains("mask shape"), r.err)
        let truncated = NSTemporaryDirectory() + "hcore-truncated-\(getpid())"
        try? FileManager.default.createDirectory(atPath: truncated, withIntermediateDirectories: true)
        try? FileManager.default.removeItem(atPath: truncated + "/config.json")
        try FileManager.default.copyItem(atPath: minilm + "/config.json", toPath: truncated + "/config.json")
        let st = try Data(contentsOf: URL(fileURLWithPath: repo + "/Tests/Fixtures/models/tiny-bert/model.safetensors"))
        try st.prefix(5000).write(to: URL(fileURLWithPath: truncated + "/model.safetensors"))
        let t = try hcore(["info", "--model", truncated])
        XCTAssertEqual(t.code, 3, t.err)
        XCTAssert(t.err.contains("model.safetensors"), t.err)
    }

    func testTokenizeMatchesGoldenCase() throws {
        let r = try hcore([
            "tokenize", "--model", minilm, "The artist was admired by the tourists .",
            "The artist admired the tourists .",
        ])
        XCTAssertEqual(r.code, 0, r.err)
        XCTAssertEqual(
            r.out.trimmingCharacters(in: .whitespacesAndNewlines),
            #"{"input_ids":[101,1996,3063,2001,12749,2011,1996,9045,1012,102,1996,3063,12749,1996,9045,1012,102],"token_type_ids":[0,0,0,0,0,0,0,0,0,0,1,1,1,1,1,1,1]}"#
        )
    }
}

/// The reference's eval scripts truncate only at the model's 512 tokens; hcore's default is 128. On pairs of
/// 149–197 tokens (Tests/Fixtures/long-pairs, made by scripts/make-long-pairs-fixture.py with transformers),
/// `--max-length 512` gives transformers' untruncated logits and the default gives its 128-token ones.
final class LongPairCLITests: XCTestCase {
    func testMaxLength512MatchesTransformers() throws {
        let fixture =
            try JSONSerialization.jsonObject(
                with: Data(contentsOf: URL(fileURLWithPath: repo + "/Tests/Fixtures/long-pairs/minilm-nli.json")))
            as! [String: Any]
        let pairs = fixture["pairs"] as! [[String: Any]]
        let input = NSTemporaryDirectory() + "hcore-long-pairs-\(getpid()).jsonl"
        defer { unlink(input) }
        let lines = try pairs.map {
            String(
                decoding: try JSONSerialization.data(withJSONObject: [
                    "text": $0["text"]!, "text_pair": $0["text_pair"]!,
                ]), as: UTF8.self)
        }
        try (lines.joined(separator: "\n") + "\n").write(toFile: input, atomically: true, encoding: .utf8)
        for n in [512, 128] {
            let r = try hcore(
                ["predict", "--model", repo + "/Tests/Fixtures/models/minilm-nli", "--jsonl", input]
                    + (n == 512 ? ["--max-length", "512"] : []))
            XCTAssertEqual(r.code, 0, r.err)
            let got = r.out.split(separator: "\n").map {
                (try! JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any])["logits"] as! [Double]
            }
            XCTAssertEqual(got.count, pairs.count)
            for (g, p) in zip(got, pairs) {
                let want = p["logits_\(n)"] as! [Double]
                XCTAssertLessThan(zip(g, want).map { abs($0 - $1) }.max()!, 1e-4, "max length \(n): \(g) vs \(want)")
            }
        }
        // The two lengths really differ on these pairs (else the test could not tell them apart).
        for p in pairs {
            XCTAssertGreaterThan(
                zip(p["logits_512"] as! [Double], p["logits_128"] as! [Double]).map { abs($0 - $1) }.max()!, 1e-3)
        }
    }
}

/// `hcore circuits attention`: one JSON line per pair with [layer][head][query][key], rows summing to 1; an SVG.
final class AttentionCLITests: XCTestCase {
    func testJSONLinesAndSVG() throws {
        let svg = NSTemporaryDirectory() + "hcore-attention-\(getpid()).svg"
        defer { unlink(svg) }
        let r = try hcore([
            "circuits", "attention", "--model", repo + "/Tests/Fixtures/models/minilm-nli",
            "The doctor saw the lawyer .", "The lawyer saw the doctor .",
            "--svg", svg, "--head", "a3.h7",
        ])
        XCTAssertEqual(r.code, 0, r.err)
        let doc = try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as! [String: Any]
        let tokens = doc["tokens"] as! [String]
        let att = doc["attentions"] as! [[[[Double]]]]
        XCTAssertEqual(tokens.first, "[CLS]")
        XCTAssertEqual(
            [att.count, att[0].count, att[0][0].count, att[0][0][0].count], [6, 12, tokens.count, tokens.count])
        for row in att[3][7] { XCTAssertEqual(row.reduce(0, +), 1, accuracy: 1e-5) }
        XCTAssertTrue(try String(contentsOfFile: svg, encoding: .utf8).contains("a3.h7"))
        XCTAssertEqual(
            try hcore([
                "circuits", "attention", "--model", repo + "/Tests/Fixtures/models/minilm-nli", "a", "--head", "a9.h0",
            ]).code, 2)
    }
}

/// `hcore circuits patch` (alias `reads`) end to end on minilm-nli: every later head's q, k and v and the logits as
/// receivers, grouped by the plotted HANS subcases present, each with a percentile among the controls.
final class PatchCLITests: XCTestCase {
    func testPatchJSON() throws {
        let r = try hcore([
            "circuits", "reads", "--model", repo + "/Tests/Fixtures/models/minilm-nli", "--data",
            repo + "/data/hans/heuristics_evaluation_set.txt.zst",
            "--max-examples", "8", "--core", "0.1 0.5", "--activations",
            repo + "/Tests/Fixtures/golden/minilm-nli_pruning.safetensors",
            "--controls", "1", "--json",
        ])
        XCTAssertEqual(r.code, 0, r.err)
        let doc = try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as! [String: Any]
        let receivers = doc["receivers"] as! [[String: Any]]
        XCTAssertEqual(receivers.count, 5 * 12 * 3 + 1)
        XCTAssertEqual(receivers.last?["receiver"] as? String, "logits")
        XCTAssertTrue(receivers.allSatisfy { ($0["percentile"] as? Double).map { (0...1).contains($0) } ?? false })
        XCTAssertEqual(doc["senders"] as? [String], ["a0.h1", "a0.h5"])
        let bad = try hcore([
            "circuits", "patch", "--model", repo + "/Tests/Fixtures/models/tiny-bert", "--data",
            repo + "/data/hans/heuristics_evaluation_set.txt.zst",
            "--max-examples", "4", "--core", "0.1", "--corrupt", "paired",
        ])
        XCTAssertEqual(bad.code, 4, bad.err)  // no entailment label
        XCTAssert(bad.err.contains("'entailment' label"), bad.err)
        let noActs = try hcore([
            "circuits", "patch", "--model", repo + "/Tests/Fixtures/models/minilm-nli", "--data",
            repo + "/data/hans/heuristics_evaluation_set.txt.zst", "--core", "0.1",
        ])
        XCTAssertEqual(noActs.code, 2, noActs.err)
        XCTAssert(noActs.err.contains("--corrupt mean needs --activations"), noActs.err)
        let unknown = try hcore([
            "circuits", "patch", "--model", repo + "/Tests/Fixtures/models/minilm-nli", "--data",
            repo + "/data/hans/heuristics_evaluation_set.txt.zst", "--core", "0.1", "--corrupt", "zero",
        ])
        XCTAssertEqual(unknown.code, 2, unknown.err)
        XCTAssert(unknown.err.contains("--corrupt takes mean or paired, not 'zero'"), unknown.err)
    }

    /// Paired corruption with frozen LayerNorm scales: the document says so, and counts the pairs that found a partner.
    func testPairedCorruptionWithFrozenLayerNorm() throws {
        let hans = repo + "/data/hans/heuristics_evaluation_set.txt.zst"
        let r = try hcore([
            "circuits", "patch", "--model", repo + "/Tests/Fixtures/models/minilm-nli", "--data", hans,
            "--max-examples", "8", "--core", "0.1 0.5",
            "--corrupt", "paired", "--corrupt-data", hans, "--freeze-layernorm", "--controls", "1", "--json",
        ])
        XCTAssertEqual(r.code, 0, r.err)
        let doc = try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as! [String: Any]
        XCTAssertEqual(doc["layernorm"] as? String, "scales frozen at the clean run's")
        let corruption = doc["corruption"] as? String ?? ""
        XCTAssert(corruption.hasPrefix("a paired input of the other label"), corruption)
        let paired = (doc["groups"] as? [String: Int])?["all"] ?? 0
        XCTAssert(corruption.contains("\(paired) pairs, \(8 - paired) without a partner"), corruption)
        XCTAssertGreaterThan(paired, 0)
    }
}
