// The reference's eval scripts truncate only at the model's 512 tokens; hcore's default is 128. On pairs of
import Foundation
import TestSupport
import XCTest

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
