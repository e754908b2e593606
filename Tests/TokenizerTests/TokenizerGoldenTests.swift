// The tokenizer against Hugging Face's fast tokenizer on all 411 golden cases
// (Tests/Fixtures/golden/tokenization.jsonl; Tests/Fixtures/golden/GOLDEN-README.md §2).
import Foundation
import TestSupport
import XCTest

@testable import Tokenizer

let fixtures = fixturesFolder.path

struct GoldenCase {
    let line: Int, text: String, pair: String?, maxLength: Int, ids: [Int32], types: [Int32], category: String
}

func loadGoldenCases() throws -> [GoldenCase] {
    let data = try String(contentsOfFile: fixtures + "/golden/tokenization.jsonl", encoding: .utf8)
    var cases: [GoldenCase] = []
    for (i, line) in data.split(separator: "\n", omittingEmptySubsequences: true).enumerated() {
        let j = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
        cases.append(
            GoldenCase(
                line: i + 1, text: j["text"] as! String, pair: j["text_pair"] as? String,
                maxLength: j["max_length"] as! Int,
                ids: (j["input_ids"] as! [Int]).map(Int32.init),
                types: (j["token_type_ids"] as! [Int]).map(Int32.init), category: j["category"] as! String))
    }
    return cases
}

final class TokenizerGoldenTests: XCTestCase {
    func check(_ tok: BertTokenizer, source: String) throws {
        let cases = try loadGoldenCases()
        XCTAssertEqual(cases.count, 411)
        var failures = 0
        for c in cases {
            let e = try tok.encode(c.text, pair: c.pair, maxLength: c.maxLength)
            if e.inputIds != c.ids || e.tokenTypeIds != c.types {
                failures += 1
                if failures <= 10 {
                    XCTFail(
                        "\(source) line \(c.line) [\(c.category)] \(c.text.debugDescription) / \(c.pair.debugDescription):\n got  \(e.inputIds.map { tok.token($0) })\n want \(c.ids.map { tok.token($0) })"
                    )
                }
            }
        }
        XCTAssertEqual(failures, 0, "\(source): \(failures) of \(cases.count) cases differ")
    }

    func testFromTokenizerJSON() throws {
        try check(
            BertTokenizer.load(tokenizerJSON: fixtures + "/models/tiny-bert/tokenizer.json"), source: "tokenizer.json")
    }

    func testFromVocabTxt() throws {
        try check(BertTokenizer.load(vocabTxt: fixtures + "/models/tiny-bert/vocab.txt"), source: "vocab.txt")
    }

    func testTruncationStrategies() throws {
        let tok = try BertTokenizer.load(vocabTxt: fixtures + "/models/tiny-bert/vocab.txt")
        let a = "one two three four five six seven eight"
        let b = "alpha beta gamma"
        // only_first keeps all of B (3) and cuts A to 16 − 3 − 3 = 10 → only 8 words exist, so no cut at 16.
        let e1 = try tok.encode(a, pair: b, maxLength: 10, truncation: .onlyFirst)
        XCTAssertEqual(e1.count, 10)
        XCTAssertEqual(Array(e1.inputIds.suffix(4)), tok.tokenize(b) + [tok.sepId])
        let e2 = try tok.encode(b, pair: a, maxLength: 10, truncation: .onlySecond)
        XCTAssertEqual(Array(e2.inputIds.prefix(5)), [tok.clsId] + tok.tokenize(b) + [tok.sepId])
        XCTAssertEqual(e2.count, 10)
        XCTAssertThrowsError(try tok.encode(a, pair: b, maxLength: 6, truncation: .onlySecond))
        XCTAssertEqual(try tok.encode(a, pair: b, maxLength: 6, truncation: .none).count, 14)
        XCTAssertThrowsError(try tok.encode(a, maxLength: 1))
    }
}
