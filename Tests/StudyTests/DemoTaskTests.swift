// The embedded demo task is built exactly as DemoTask.swift documents: proportions, label of each kind,
// low-overlap pairs sharing no content word, high-overlap non-entailed pairs from exactly the non-entailment
// subcases the paper does not plot, train and dev
// disjoint, the OOD stride, and determinism.
import Checkpoint
import Eval
import Foundation
import Study
import TestSupport
import XCTest

final class DemoTaskTests: XCTestCase {
    func testBuiltAsDocumented() throws {
        let root = repositoryRoot.path
        let train = try Dataset.load(root + "/data/hans/heuristics_train_set.txt.zst").examples
        let eval = try Dataset.load(root + "/data/hans/heuristics_evaluation_set.txt.zst").examples
        let task = try DemoTask.build(hansTrain: train, hansEval: eval, trainSize: 1000, devSize: 200)
        XCTAssertEqual(task.train.count, 1000)
        XCTAssertEqual(task.dev.count, 200)
        // The paper's four plotted subcases stay out of the in-domain task entirely: no pair of theirs, and no
        // premise or hypothesis of theirs in a borrowed (low-overlap) pair.
        let plotted = train.filter { plottedHANSSubcases.contains($0.subcase ?? "") }
        let plottedTexts = Set(plotted.flatMap { [$0.text, $0.pair ?? ""] })
        let others = Set(
            train.filter { !plottedHANSSubcases.contains($0.subcase ?? "") }.flatMap { [$0.text, $0.pair ?? ""] })
        XCTAssertFalse(plotted.isEmpty)
        for e in task.train + task.dev {
            XCTAssertFalse(plottedHANSSubcases.contains(e.subcase ?? ""), "\(e.subcase ?? "")")
            for t in [e.text, e.pair ?? ""] where plottedTexts.contains(t) && !others.contains(t) {
                XCTFail("'\(t)' comes from a plotted subcase")
            }
        }
        XCTAssertEqual(task.ood.count, 3000)
        XCTAssertEqual(
            Dictionary(grouping: task.ood, by: { $0.subcase ?? "" }).mapValues(\.count).values.sorted(),
            [Int](repeating: 100, count: 30))
        func words(_ s: String) -> Set<String> {
            Set(s.lowercased().split { !$0.isLetter }.map(String.init).filter { !["the", "a", "an"].contains($0) })
        }
        let hansPairs = Set(train.map { $0.text + "\t" + ($0.pair ?? "") })
        for e in task.train + task.dev {
            switch (e.heuristic, e.label) {
            case ("high-overlap", "entailment"):
                XCTAssertTrue(hansPairs.contains(e.text + "\t" + e.pair!))
            case ("high-overlap", "non-entailment"):
                XCTAssertTrue(
                    DemoTask.seenSubcases.contains(e.subcase ?? ""), "\(e.subcase ?? "nil") is not a seen subcase")
            case ("low-overlap", "non-entailment"):
                XCTAssertTrue(words(e.pair!).isDisjoint(with: words(e.text)), "\(e.text) / \(e.pair!)")
            default:
                XCTFail("unexpected kind \(e.heuristic ?? "nil") / \(e.label ?? "nil")")
            }
        }
        // The seen subcases are HANS's non-entailment subcases less the plotted four, each of them used.
        let nonEntailment = Set(train.filter { $0.label == "non-entailment" }.compactMap(\.subcase))
        XCTAssertEqual(nonEntailment.count, 15)
        XCTAssertEqual(DemoTask.seenSubcases, nonEntailment.subtracting(plottedHANSSubcases))
        XCTAssertEqual(
            Set(
                task.train.filter { $0.heuristic == "high-overlap" && $0.label == "non-entailment" }.compactMap(
                    \.subcase)), DemoTask.seenSubcases)
        let kinds = Dictionary(grouping: task.train, by: { "\($0.heuristic!)/\($0.label!)" }).mapValues(\.count)
        XCTAssertEqual(
            kinds,
            ["high-overlap/entailment": 450, "high-overlap/non-entailment": 200, "low-overlap/non-entailment": 350])
        let trainPairs = Set(task.train.map { $0.text + "\t" + ($0.pair ?? "") })
        XCTAssertTrue(
            task.dev.filter { $0.heuristic == "high-overlap" }.allSatisfy {
                !trainPairs.contains($0.text + "\t" + $0.pair!)
            })
        let again = try DemoTask.build(hansTrain: train, hansEval: eval, trainSize: 1000, devSize: 200)
        XCTAssertEqual(again.train, task.train)
        let vocab = try task.vocabulary()
        XCTAssertEqual(Array(vocab.prefix(5)), ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
        XCTAssertTrue(vocab.contains("lawyers") && vocab.contains("."))
    }
}
