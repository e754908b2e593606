// Dataset readers on the shipped HANS/PAWS files and on small files written here.
import Eval
import Foundation
import TestSupport
import XCTest

func tempFile(_ name: String, _ contents: String) -> String {
    let dir = NSTemporaryDirectory() + "hcore-tests-\(getpid())"
    try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    let p = dir + "/" + name
    XCTAssert(FileManager.default.createFile(atPath: p, contents: Data(contents.utf8)), "could not write \(p)")
    return p
}

final class DatasetTests: XCTestCase {
    func testHANSEvaluationSet() throws {
        let ds = try Dataset.load(repoRoot + "/data/hans/heuristics_evaluation_set.txt.zst")
        XCTAssertEqual(ds.format, .hans)
        XCTAssertEqual(ds.count, 30_000)
        XCTAssertEqual(Set(ds.examples.compactMap(\.subcase)).count, 30)
        XCTAssertEqual(Set(ds.examples.compactMap(\.heuristic)), ["lexical_overlap", "subsequence", "constituent"])
        XCTAssertEqual(ds.examples.filter { $0.label == "entailment" }.count, 15_000)
        // First data row of the file (line 2), as `sed -n 2p | cut -f1,6,7,9,10` shows it.
        XCTAssertEqual(
            ds.examples[0],
            Example(
                text: "Clearly the author encouraged the actors .", pair: "The author encouraged the actors .",
                label: "entailment", heuristic: "constituent", subcase: "ce_adverb", line: 2))
    }

    func testPAWS() throws {
        let ds = try Dataset.load(repoRoot + "/data/paws-qqp/dev_and_test.tsv.zst")
        XCTAssertEqual(ds.format, .paws)
        XCTAssertEqual(ds.count, 12_663)
        XCTAssert(ds.examples.allSatisfy { $0.label == "0" || $0.label == "1" })
    }

    func testGLUEFormats() throws {
        let mnli = tempFile(
            "dev_matched.tsv",
            "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\tsentence2_parse\tsentence1\tsentence2\tlabel1\tgold_label\n0\t1\t2\tfiction\t(a)\t(b)\t(a)\t(b)\tA \"quoted\" premise.\tA hypothesis.\tneutral\tneutral\n"
        )
        let m = try Dataset.load(mnli)
        XCTAssertEqual(m.format, .mnli)
        XCTAssertEqual(
            m.examples, [Example(text: "A \"quoted\" premise.", pair: "A hypothesis.", label: "neutral", line: 2)])
        let qqp = tempFile("dev.tsv", "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n1\t2\t3\tHow?\tWhy?\t0\n")
        let q = try Dataset.load(qqp)
        XCTAssertEqual(q.format, .qqp)
        XCTAssertEqual(q.examples.first?.label, "0")
    }

    func testBadRowsNameFileAndLine() throws {
        let p = tempFile(
            "bad.tsv", "id\tsentence1\tsentence2\tlabel\n1\ta\tb\t1\n2\tonly two\n3\tc\td\t7\n4\te\tf\t0\n")
        XCTAssertThrowsError(try Dataset.load(p)) { XCTAssert("\($0)".contains("bad.tsv:3:"), "\($0)") }
        let ds = try Dataset.load(p, skipBadRows: true)
        XCTAssertEqual(ds.count, 2)
        XCTAssertEqual(ds.skipped.count, 2)
        XCTAssert(ds.skipped[1].contains(":4:"))
    }

    func testJSONLAndCSV() throws {
        let j = tempFile(
            "x.jsonl", "{\"text\": \"a\", \"text_pair\": \"b\", \"label\": 1}\n\n{\"premise\": 3}\n{\"text\": \"c\"}\n")
        XCTAssertThrowsError(try Dataset.load(j)) { XCTAssert("\($0)".contains("x.jsonl:3:")) }
        let ds = try Dataset.load(j, skipBadRows: true)
        XCTAssertEqual(ds.examples.map(\.text), ["a", "c"])
        XCTAssertEqual(ds.examples[0].pair, "b")
        XCTAssertEqual(ds.examples[0].label, "1")
        let c = tempFile(
            "x.csv", "premise,hypothesis,y\n\"a, with comma\",\"say \"\"hi\"\"\",entailment\nb,c,neutral\n")
        let cs = try Dataset.load(c, keys: .init(text: "premise", pair: "hypothesis", label: "y"))
        XCTAssertEqual(cs.examples.map(\.text), ["a, with comma", "b"])
        XCTAssertEqual(cs.examples[0].pair, "say \"hi\"")
        XCTAssertEqual(cs.examples[1].label, "neutral")
    }
}
