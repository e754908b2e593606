// Every option that takes a value, of every command below, given each hostile number in turn (0, −1, huge,
// NaN, ±inf) on top of an invocation that succeeds. A numeric flag (its help gives a numeric default) ends
// with 2, refused with its range, for NaN, ±inf and huge values, and with 0 or 2 otherwise; a path or a name
// given a number ends with its documented code (3 no such input, 4 no such column, 5 an output that is a
// file). Never a trap, an internal error or a hang. Options come from each command's --help, so a flag added
// later is covered without a change here. (It found the output path "0": Foundation's
// deletingLastPathComponent traps on a one-character name.)
import Foundation
import Synchronization
import TestSupport
import XCTest

final class NumericFlagPropertyTests: XCTestCase {
    let values = ["0", "-1", "9223372036854775807", "1e300", "nan", "inf", "-inf"]

    /// Invocations that succeed in well under a second on the fixtures (run from a scratch folder, so that an
    /// output path like "nan" lands there).
    func bases(_ dir: String) throws -> [[String]] {
        let tiny = repo + "/Tests/Fixtures/models/tiny-bert"
        let minilm = repo + "/Tests/Fixtures/models/minilm-nli"
        let hans = repo + "/Tests/Fixtures/reference/datasets/hans-cases"
        let paws = repo + "/Tests/Fixtures/reference/datasets/paws-qqp"
        let store = try makeTestStore("numeric-flags.hcs", n: 4)
        return [
            ["predict", "--model", tiny, "the cat sat", "a cat sat"],
            ["tokenize", "--model", tiny, "the cat sat", "a cat sat"],
            ["eval", "run", "--model", minilm, "--data", hans, "--max-examples-per-case", "2"],
            ["activations", "--model", tiny, "--data", paws, "--max-examples", "8", "--out", dir + "/a.safetensors"],
            ["importance", "--model", minilm, "--data", hans, "--max-examples", "8"],
            ["circuits", "attention", "--model", tiny, "the cat sat", "a cat sat"],
            ["figures", repo + "/Tests/Fixtures/reference/eval/mnli-sp50.json", "--out", dir + "/figures"],
            ["store", "ls", store],
        ]
    }

    /// The options of `command` that take a value, as its --help lists them, each with whether its help gives a
    /// numeric default (then it is a number, and a non-finite or huge value must be refused, exit 2).
    func valueOptions(_ command: [String]) throws -> [(option: String, numeric: Bool)] {
        let help = try hcore(command + ["--help"]).out
        var options: [(option: String, text: String)] = []
        for line in help.split(separator: "\n") {
            let words = line.split(separator: " ")
            if let first = words.first, first.hasPrefix("-") {
                let takesValue = words.count >= 2 && first.hasPrefix("--") && words[1].hasPrefix("<")
                options.append((takesValue ? String(first) : "", String(line)))
            } else if !options.isEmpty {
                options[options.count - 1].text += " " + line.trimmingCharacters(in: .whitespaces)
            }
        }
        let numericDefault = try Regex(#"\(default: -?[0-9][0-9.e+-]*\)"#)
        return options.filter { !$0.option.isEmpty }.map { ($0.option, $0.text.contains(numericDefault)) }
    }

    func testHostileNumbersNeverTrap() throws {
        let dir = scratch("numeric-flags")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var cases: [[String]] = []
        var mustRefuse = Set<[String]>()  // a numeric option given a non-finite or out-of-range number
        for base in try bases(dir) {
            let command = Array(base.prefix { !$0.hasPrefix("-") && !$0.hasPrefix("/") && !$0.contains(" ") })
            let options = try valueOptions(command)
            XCTAssertFalse(options.isEmpty, "\(command): no options found in its help")
            for (option, numeric) in options {
                for value in values {
                    cases.append(base + ["\(option)=\(value)"])
                    // seeds take any 64-bit unsigned integer, Int.max included
                    let valid = ["0", "-1"] + (option.hasSuffix("seed") ? ["9223372036854775807"] : [])
                    if numeric && !valid.contains(value) { mustRefuse.insert(cases.last!) }
                }
            }
        }
        XCTAssertGreaterThan(mustRefuse.count, 60)
        XCTAssertGreaterThan(cases.count, 400)
        let all = cases
        // Two at a time (the machines have two cores); each in its own folder, since some write outputs.
        let results = Mutex([(args: [String], code: Int32, err: String, signalled: Bool, hung: Bool)]())
        DispatchQueue.concurrentPerform(iterations: 2) { worker in
            let folder = dir + "/worker\(worker)"
            try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            for args in stride(from: worker, to: all.count, by: 2).map({ all[$0] }) {
                guard let r = try? hcoreGuarded(args, in: folder) else { continue }
                results.withLock { $0.append((args, r.code, r.err, r.signalled, r.hung)) }
            }
        }
        let ran = results.withLock { $0 }
        XCTAssertEqual(ran.count, cases.count)
        for r in ran where r.hung || r.signalled || ![0, 2, 3, 4, 5].contains(r.code) {
            XCTFail("\(r.args.joined(separator: " ")) → exit \(r.code)\(r.hung ? " (hung)" : ""): \(r.err)")
        }
        for r in ran where mustRefuse.contains(r.args) && r.code != 2 {
            XCTFail(
                "a numeric option took a non-finite or huge value: \(r.args.joined(separator: " ")) → exit \(r.code)")
        }
    }
}
