// The hcore binary end to end: predict on the golden pairs gives transformers' labels, errors give the
// documented exit codes. Runs the release binary built next to the tests (scripts/test.sh builds it).
import Foundation
import TestSupport
import XCTest

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
