// A results file that cannot be what it claims is refused, naming the field: accuracies outside [0, 1] or not
// finite (the reference's grids mark a missing run with −1), keys that are not a step or a sparsity in percent
// (Int.max used to overflow an axis), a key spelt twice (5 and 05), an empty seed, a flat table without the
// full model's row; and a grid whose curve has none of the cases to draw says so instead of trapping.
import Checkpoint
import Foundation
import XCTest

@testable import Figures

final class ResultsFileChecksTests: XCTestCase {
    let cases = #"{"validation_matched": 0.8, "lexical_overlap_ln_preposition": 0.2}"#

    func refused(_ json: String, _ fragment: String, line: UInt = #line) {
        XCTAssertThrowsError(try ResultsFile.parse(try JSONValue.parse(json), path: "r.json"), line: line) {
            XCTAssert("\($0)".contains(fragment), "\($0)", line: line)
        }
    }

    func testImpossibleResultsAreRefused() throws {
        refused(#"{"42": {"50": {"validation_matched": 1e308}}}"#, "(an accuracy) is 1e+308")
        refused(#"{"42": {"50": {"validation_matched": -1}}}"#, "(an accuracy) is -1.0")
        refused(#"{"42": {"9223372036854775807": \#(cases)}}"#, "must be an integer in [0, 100]")
        refused(#"{"42": {"9223372036854775807": {"50": \#(cases)}}}"#, "must be an integer in [0, 1000000000]")
        refused(#"{"42": {"5": \#(cases), "05": \#(cases)}}"#, "a key is spelt twice")
        refused(#"{"42": {}, "43": {"50": \#(cases)}}"#, "an empty object where results were expected")
        refused(
            #"{"seed": ["42", "43"], "sparsity": [0.5, 0.5], "mnli-matched": [0.8, 0.7]}"#,
            "row 0 must be the full model")
        refused(#"{"seed": ["original", "43"], "sparsity": [0, 0.5], "mnli-matched": [0.8, 2]}"#, "mnli-matched[1]")
        // A grid marks a missing run with −1.
        guard case .grid = try ResultsFile.parse(try JSONValue.parse(#"{"42": {"0": {"50": {"x": -1}}}}"#), path: "g")
        else { return XCTFail("a grid with a missing run") }
    }

    func testGridWithoutCasesToDrawIsAnError() throws {
        let grid = try ResultsFile.parse(try JSONValue.parse(#"{"42": {"0": {"50": {"foo": 0.5}}}}"#), path: "g")
        let curve = try ResultsFile.parse(try JSONValue.parse(#"{"0": {"foo": 0.5}, "500": {"foo": 0.6}}"#), path: "c")
        XCTAssertThrowsError(
            try drawFigures(
                [("t-sparsity-grid-acc.json", grid), ("t-acc_over_ft.json", curve)], options: FigureOptions())
        ) { XCTAssert("\($0)".contains("no case to draw"), "\($0)") }
    }
}
