// The Arrow IPC reader and Hugging Face `datasets` folders, on fixtures written by pyarrow and by `datasets`
// itself (scripts/make-arrow-fixtures.py; the folders cut from the reference's data/datasets): typed columns
// with nulls in both IPC formats, and the reference's paws-qqp and hans-cases rows equal to the same rows of
// the TSV files.
import Checkpoint
import Foundation
import TestSupport
import XCTest

@testable import Eval

final class ArrowDatasetTests: XCTestCase {
    let fixtures = repositoryRoot.path + "/Tests/Fixtures/"

    func testTypedColumnsWithNullsInBothFormats() throws {
        for file in ["types-file.arrow", "types-stream.arrow"] {
            let t = try ArrowTable(bytes: try readDataFile(fixtures + "arrow/" + file), path: file)
            XCTAssertEqual(t.rows, 3, file)
            XCTAssertEqual(t.names, ["i8", "i32", "u16", "i64", "flag", "big", "nothing", "text"])
            XCTAssertEqual(t.column("i8"), .ints([-128, nil, 127]))
            XCTAssertEqual(t.column("i32"), .ints([1, -2, nil]))
            XCTAssertEqual(t.column("u16"), .ints([65535, 0, 7]))
            XCTAssertEqual(t.column("i64"), .ints([nil, -(1 << 62), 1 << 62]))
            XCTAssertEqual(t.column("flag"), .bools([true, nil, false]))
            XCTAssertEqual(t.column("big"), .strings(["a", nil, "héllo"]))
            XCTAssertEqual(t.column("nothing"), .nulls(3))
            XCTAssertEqual(t.column("text"), .strings(["x", "", nil]))
        }
    }

    /// Every truncation and a sweep of single-byte corruptions end in an error or a table, never a crash.
    func testTruncatedAndCorruptedFilesAreErrors() throws {
        let bytes = try readDataFile(fixtures + "arrow/types-stream.arrow")
        for n in 0..<bytes.count { _ = try? ArrowTable(bytes: Array(bytes[0..<n]), path: "t") }
        XCTAssertThrowsError(try ArrowTable(bytes: Array(bytes[0..<(bytes.count / 2)]), path: "t.arrow")) {
            XCTAssert("\($0)".contains("t.arrow: Arrow IPC at byte"), "\($0)")
        }
        for i in stride(from: 0, to: bytes.count, by: 3) {
            for v: UInt8 in [0x00, 0x7F, 0xFF] {
                var b = bytes
                b[i] = v
                _ = try? ArrowTable(bytes: b, path: "t")
            }
        }
    }

    func testPAWSFolderEqualsTheTSVRows() throws {
        let folder = try Dataset.load(fixtures + "reference/datasets/paws-qqp")
        let tsv = try Dataset.load(repositoryRoot.path + "/data/paws-qqp/dev_and_test.tsv.zst", limit: 200)
        XCTAssertEqual(folder.format, .paws)
        XCTAssertEqual(folder.count, 200)
        for (a, b) in zip(folder.examples, tsv.examples) {
            XCTAssertEqual([a.text, a.pair, a.label], [b.text, b.pair, b.label])
        }
    }

    /// hans-cases: a folder of dataset dicts, one per case; each case's validation rows are the HANS
    /// evaluation set's rows of that subcase, in order, with ClassLabel names as labels.
    func testHANSCasesEqualTheTSVRows() throws {
        let folder = try Dataset.load(fixtures + "reference/datasets/hans-cases")
        XCTAssertEqual(folder.format, .hans)
        XCTAssertEqual(folder.count, 200)
        let tsv = try Dataset.load(repositoryRoot.path + "/data/hans/heuristics_evaluation_set.txt.zst")
        for subcase in ["cn_embedded_under_if", "ln_subject/object_swap"] {
            let got = folder.examples.filter { $0.subcase == subcase }
            let want = tsv.examples.filter { $0.subcase == subcase }.prefix(100)
            XCTAssertEqual(got.count, 100, subcase)
            for (a, b) in zip(got, want) {
                XCTAssertEqual(
                    [a.text, a.pair, a.label, a.heuristic], [b.text, b.pair, b.label, b.heuristic], subcase)
            }
        }
        XCTAssertThrowsError(try Dataset.load(fixtures + "arrow")) {
            XCTAssert("\($0)".contains("types-file.arrow: row 2 has no text"), "\($0)")
        }  // a null text, named
    }
}
