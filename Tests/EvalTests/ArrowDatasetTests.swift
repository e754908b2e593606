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

    /// Null columns and their rows cost a file nothing: 400 of them beside 8,000 booleans describe 3.2 million
    /// cells in 25 KB. What the reader builds is bounded by the file's size, so such a file is refused.
    func testCheapColumnsAreBoundedByTheFilesSize() throws {
        XCTAssertThrowsError(
            try ArrowTable(bytes: try readDataFile(fixtures + "arrow/wide-null-columns.arrow"), path: "n.arrow")
        ) { XCTAssert("\($0)".contains("more than a file of 24872 bytes can hold"), "\($0)") }
    }

    /// A file cut where a message ends is still cut: the stream lacks its end marker, the file format its
    /// footer and closing magic; both are refused instead of read up to the cut.
    func testFilesCutBetweenMessagesAreRefused() throws {
        let stream = try readDataFile(fixtures + "arrow/types-stream.arrow")
        XCTAssertThrowsError(try ArrowTable(bytes: Array(stream.dropLast(8)), path: "s.arrow")) {
            XCTAssert("\($0)".contains("without its end-of-stream marker"), "\($0)")
        }
        let file = try readDataFile(fixtures + "arrow/types-file.arrow")
        // The file ends: footer, its length (4 bytes, little-endian), "ARROW1".
        let footerLength = (0..<4).reduce(0) { $0 | Int(file[file.count - 10 + $1]) << (8 * $1) }
        let footerStart = file.count - 10 - footerLength
        XCTAssertThrowsError(try ArrowTable(bytes: Array(file[0..<footerStart]), path: "f.arrow")) {
            XCTAssert("\($0)".contains("closing ARROW1 is missing"), "\($0)")
        }
    }

    /// A HANS case without its dataset_info.json still has HANS's labels (0 entailment, 1 non-entailment), as the
    /// hans dataset declares them, instead of integers that match no label ("accuracy 0.0 over 0 scored").
    func testHANSWithoutDatasetInfoKeepsItsLabels() throws {
        let source = fixtures + "reference/datasets/hans-cases/constituent_cn_embedded_under_if/validation"
        let dir = NSTemporaryDirectory() + "hcore-hans-noinfo-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try FileManager.default.copyItem(
            atPath: source + "/data-00000-of-00001.arrow", toPath: dir + "/data-00000-of-00001.arrow")
        let bare = try Dataset.load(dir)
        XCTAssertEqual(bare.examples.map(\.label), try Dataset.load(source).examples.map(\.label))
        XCTAssertEqual(bare.examples.compactMap(\.label).count, 100)
        XCTAssert(Set(bare.examples.compactMap(\.label)).isSubset(of: ["entailment", "non-entailment"]))
    }

    /// A dataset folder is walked without following a link to a folder (a link to itself is not a loop) and
    /// reads a file reached twice once; a device or a FIFO in it is refused by name, never read or waited on.
    func testFolderWalksRefuseSpecialFilesAndLoops() throws {
        let dir = NSTemporaryDirectory() + "hcore-walk-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        for f in ["dataset_info.json", "data-00000-of-00001.arrow"] {
            try FileManager.default.copyItem(
                atPath: fixtures + "reference/datasets/paws-qqp/" + f, toPath: dir + "/" + f)
        }
        try FileManager.default.createSymbolicLink(atPath: dir + "/self", withDestinationPath: dir)
        try FileManager.default.createSymbolicLink(
            atPath: dir + "/data-00001-of-00001.arrow", withDestinationPath: dir + "/data-00000-of-00001.arrow")
        XCTAssertEqual(try Dataset.load(dir).count, 200)
        try FileManager.default.createSymbolicLink(atPath: dir + "/data-00002.arrow", withDestinationPath: "/dev/zero")
        XCTAssertThrowsError(try Dataset.load(dir)) { XCTAssert("\($0)".contains("is a character device"), "\($0)") }
        unlink(dir + "/data-00002.arrow")
        XCTAssertEqual(mkfifo(dir + "/data-00003.arrow", 0o600), 0)
        XCTAssertThrowsError(try Dataset.load(dir)) { XCTAssert("\($0)".contains("is a FIFO"), "\($0)") }
        XCTAssertThrowsError(try Dataset.load("/dev/zero")) { XCTAssert("\($0)".contains("character device"), "\($0)") }
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
