// `hcore circuits attention`: one JSON line per pair with [layer][head][query][key], rows summing to 1; an SVG.
import Foundation
import TestSupport
import XCTest

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
