// The figures' numbers against the reference's own files (Tests/Fixtures/reference, copied unchanged from
// princeton-nlp/Heuristic-Core): the effective-size series recomputed independently in
// ../shared/reference/README.md, shapes detected, bootstrap bands reproducible, no text outside a figure.
import Checkpoint
import Figures
import Foundation
import TestSupport
import XCTest

final class FiguresTests: XCTestCase {
    let eval = repositoryRoot.path + "/Tests/Fixtures/reference/eval/"

    func testShapesOfTheReferenceFiles() throws {
        for (file, shape) in [
            ("mnli-sp50", "flat"), ("qqp-sp30", "flat"), ("mnli-acc_vs_sparsity", "sweep"),
            ("mnli-sparsity-grid-acc", "grid"),
            ("mnli-acc_over_ft", "curve"), ("qqp-sparsity-grid-acc", "grid"), ("qqp-acc_over_ft", "curve"),
            ("qqp-acc_vs_sparsity", "sweep"),
        ] {
            let f = try ResultsFile.load(path: eval + file + ".json")
            switch (f, shape) {
            case (.flat(let t), "flat"):
                XCTAssertEqual(t.seeds.first, "original")
                XCTAssertEqual(t.seeds.count, 13)
                XCTAssertEqual(t.sparsity.count, 13)
            case (.sweep, "sweep"), (.grid, "grid"), (.curve, "curve"): break
            default: XCTFail("\(file) read as \(f.shapeName)")
            }
        }
        XCTAssertThrowsError(
            try ResultsFile.parse(try JSONValue.parse("{\"seed\": [\"original\", \"b\"], \"x\": [1]}"), path: "t.json")
        ) {
            XCTAssert("\($0)".contains("column 'x' must be 2 numbers"), "\($0)")
        }
        XCTAssertThrowsError(
            try ResultsFile.parse(try JSONValue.parse("{\"42\": {\"ten\": {\"a\": 1}}}"), path: "t.json")
        ) {
            XCTAssert("\($0)".contains("must be an integer in [0, 100]"), "\($0)")
        }
    }

    /// ../shared/reference/README.md: "Recomputed from the two MNLI files here, mean over seeds, steps 500…54500".
    func testEffectiveSizeEqualsThePapersSeries() throws {
        guard case .grid(let grid) = try ResultsFile.load(path: eval + "mnli-sparsity-grid-acc.json"),
            case .curve(let curve) = try ResultsFile.load(path: eval + "mnli-acc_over_ft.json")
        else { return XCTFail("shapes") }
        let all = ReferenceCases.mnliSplitID + ReferenceCases.hansPlotted
        let want: [[Double]] = [
            [30.0, 35.0, 85.0, 83.3, 88.3, 76.7, 90.0, 73.3, 78.3, 76.7],
            [50.0, 51.7, 50.0, 48.3, 50.0, 48.3, 50.0, 48.3, 45.0, 48.3],
            [30.0, 30.0, 96.7, 93.3, 93.3, 83.3, 93.3, 73.3, 78.3, 76.7],
        ]
        for (cases, series) in zip([all, ReferenceCases.mnliSplitID, ReferenceCases.hansPlotted], want) {
            let s = try effectiveSizes(grid: grid, curve: curve, cases: cases, name: "", margin: 0.03)
            XCTAssertEqual(s.steps, [500, 6500, 12500, 18500, 24500, 30500, 36500, 42500, 48500, 54500])
            for (got, w) in zip(s.means, series) { XCTAssertEqual(got, w, accuracy: 0.05, "\(cases.count) cases") }
        }
    }

    func testEffectiveSizeWalkOnAHandMadeGrid() {
        let full: CaseAccuracies = ["a": 0.8, "b": 0.6]
        let targets: [Int: CaseAccuracies] = [
            70: ["a": 0.5, "b": 0.5], 50: ["a": 0.79, "b": 0.59], 30: ["a": 0.8, "b": 0.6], 60: ["a": 0.9],
        ]
        // 60 lacks b: skipped
        XCTAssertEqual(effectiveSize(targets: targets, full: full, cases: ["a", "b"], margin: 0.03), 50)
        XCTAssertEqual(effectiveSize(targets: targets, full: full, cases: ["a"], margin: 0.03), 40)  // 60 has a = 0.9
        XCTAssertEqual(effectiveSize(targets: [70: ["a": 0.1]], full: full, cases: ["a"], margin: 0.03), 100)
    }

    func testBootstrapBandIsSeededAndCoversTheMean() {
        let xs = [30.0, 35, 50, 41, 38, 29, 60]
        let a = meanBand(xs, seed: 7)
        let b = meanBand(xs, seed: 7)
        let c = meanBand(xs, seed: 8)
        XCTAssertEqual(a, b)
        XCTAssertNotEqual(a, c)
        XCTAssertEqual(a.mean, xs.reduce(0, +) / 7, accuracy: 1e-12)
        XCTAssert(a.low < a.mean && a.mean < a.high && a.low >= 29 && a.high <= 60, "\(a)")
        XCTAssertEqual(meanBand([4], seed: 1), MeanBand(mean: 4, low: 4, high: 4))
    }

    /// Against scipy.stats.gaussian_kde([1, 2, 4])([0, 2, 5]) (scipy 1.x, Scott's factor n^(-1/5)): 0.10697687, 0.21489537, 0.08373715.
    func testKernelDensityAgainstScipy() {
        let got = kernelDensity([1, 2, 4], at: [0, 2, 5])
        for (g, w) in zip(got, [0.10697687, 0.21489537, 0.08373715]) { XCTAssertEqual(g, w, accuracy: 2e-6) }
    }

    /// Every figure kind from the shared MNLI files: the numbers it draws are the files' (violin full-model row,
    /// accuracy-vs-sparsity means), and no text element's estimated extent leaves its picture.
    func testEveryFigureKindDrawsTheFilesNumbersInsideItsPicture() throws {
        guard case .flat(let sp50) = try ResultsFile.load(path: eval + "mnli-sp50.json"),
            case .sweep(let sweep) = try ResultsFile.load(path: eval + "mnli-acc_vs_sparsity.json"),
            case .grid(let grid) = try ResultsFile.load(path: eval + "mnli-sparsity-grid-acc.json"),
            case .curve(let curve) = try ResultsFile.load(path: eval + "mnli-acc_over_ft.json"),
            case .flat(let qqp) = try ResultsFile.load(path: eval + "qqp-sp30.json")
        else { return XCTFail("shapes") }
        let cases = ReferenceCases.defaults(available: Set(sp50.columns.map(\.name)))
        XCTAssertEqual(cases, ReferenceCases.mnliFlatID + ReferenceCases.hansPlotted)
        XCTAssertEqual(ReferenceCases.defaults(available: Set(qqp.columns.map(\.name))), ["qqp", "paws-qqp_0"])
        let violin = try violinFigure(sp50, cases: cases, name: "v")
        XCTAssertEqual(
            violin.numbers.get("cases")?.get("mnli-matched")?.get("full")?.doubleValue ?? 0, 83.34, accuracy: 1e-9)
        let avs = try accuracyVsSparsityFigure(
            sweep, idCases: ReferenceCases.mnliSplitID, oodCases: ReferenceCases.hansPlotted, name: "a", seed: 0)
        let first = avs.numbers.get("series")?.get("ID")?.arrayValue?.first
        let want =
            sweep.keys.map { s in
                (sweep[s]![0]!["validation_matched"]! + sweep[s]![0]!["validation_mismatched"]!) / 2 * 100
            }.reduce(0, +) / Double(sweep.count)
        XCTAssertEqual(first?.get("mean")?.doubleValue ?? 0, want, accuracy: 1e-3)
        let figures = [
            violin, try barFigure(sp50, cases: cases, name: "b"), avs,
            try violinFigure(qqp, cases: ["qqp", "paws-qqp_0"], name: "q"),
            try effectiveSizeFigure(
                grid: grid, curve: curve, cases: ReferenceCases.mnliSplitID + ReferenceCases.hansPlotted, margin: 0.03,
                name: "e", seed: 0),
            try keepCountHeatmap(
                first: (0..<12).map { i in (0..<144).map { ($0 * 7 + i) % 3 != 0 } },
                second: (0..<12).map { i in (0..<144).map { ($0 + i) % 4 == 0 } },
                labels: ("50%", "70%"), name: "h"),
        ]
        for f in figures {
            XCTAssertEqual(f.canvas.clippedTexts, [], f.name)
            XCTAssertGreaterThan(f.canvas.textExtents.count, 3, f.name)
        }
        let grid13 = figures.last!.numbers.get("grid")?.arrayValue
        XCTAssertEqual(grid13?.count, 13)
        XCTAssertEqual(grid13?.flatMap { $0.arrayValue ?? [] }.compactMap(\.intValue).reduce(0, +), 144)
    }
}
