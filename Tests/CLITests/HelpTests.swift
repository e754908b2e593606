// Every command's --help reads cleanly at the parser's default width of 80 columns (what it uses when stdout
// is not a terminal). The parser re-wraps paragraphs itself, so their source must not hold hard line breaks;
// but it cannot re-wrap an indented line (a table row, an example command), which it breaks at column 0,
// so those must fit in 80 columns as written.
import Foundation
import XCTest

final class HelpTests: XCTestCase {
    /// `hcore`, then every subcommand and sub-subcommand its help lists (aliases such as "patch, reads" by
    /// their first name), each with its help unwrapped (a very wide terminal: each source line of the overview
    /// and discussion is one line).
    func helps() throws -> [(path: [String], lines: [String])] {
        var all: [(path: [String], lines: [String])] = []
        var queue: [[String]] = [[]]
        while !queue.isEmpty {
            let path = queue.removeFirst()
            let help = try hcore(path + ["--help"], environment: ["COLUMNS": "10000"])
            XCTAssertEqual(help.code, 0, "hcore \(path.joined(separator: " ")) --help: \(help.err)")
            let lines = help.out.components(separatedBy: "\n")
            all.append((path, lines))
            guard path.count < 2, let start = lines.firstIndex(of: "SUBCOMMANDS:") else { continue }
            for line in lines[(start + 1)...] where line.hasPrefix("  ") && !line.hasPrefix("   ") {
                let name = line.dropFirst(2).prefix { $0 != " " && $0 != "," }
                // Command names are lowercase; the section ends with "See 'hcore help …'".
                if let first = name.first, first.isLowercase { queue.append(path + [String(name)]) }
            }
        }
        return all
    }

    func testEveryHelpFitsEightyColumns() throws {
        let all = try helps()
        XCTAssertGreaterThan(all.count, 25, "the walk found too few commands: \(all.map(\.path))")
        XCTAssert(
            all.contains { $0.path == ["circuits", "readers"] }
                && all.contains { $0.path == ["store", "import-heuristic-core"] }, "\(all.map(\.path))")
        for (path, lines) in all {
            let name = (["hcore"] + path).joined(separator: " ")
            let text = lines.prefix { !$0.hasPrefix("USAGE:") }
            for line in text where line.hasPrefix(" ") {
                XCTAssertLessThanOrEqual(
                    line.count, 80,
                    "\(name) --help: an indented line is \(line.count) columns, so an 80-column terminal breaks it at column 0:\n\(line)"
                )
            }
            for (a, b) in zip(text, text.dropFirst())
            where !a.isEmpty && !b.isEmpty && !a.hasPrefix(" ") && !b.hasPrefix(" ")
                && !a.hasPrefix("OVERVIEW:")
            {
                XCTFail(
                    "\(name) --help: a paragraph holds a hard line break (the parser wraps paragraphs itself):\n\(a)\n\(b)"
                )
            }
        }
    }
}
