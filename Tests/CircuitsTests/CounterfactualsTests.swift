// The overlap-removing counterfactual: the same premise, a hypothesis of the same subcase sharing none of its
// content words, the same token count; seeded; every plotted subcase, SO-Swap included, finds partners.
import Checkpoint
import Eval
import Foundation
import Kernels
import Model
import TestSupport
import Tokenizer
import XCTest

@testable import Circuits

final class CounterfactualsTests: XCTestCase {
    func testOverlapRemovedKeepsLengthAndSubcaseAndRemovesOverlap() throws {
        let folder = try minilmFolder()
        let tok = try BertTokenizer.load(folder: folder)
        let hans = try Dataset.load(repoRoot + "/data/hans/heuristics_evaluation_set.txt.zst").examples
        let picked = perStratumSample(hans, perStratum: 10, strata: plottedHANSSubcases, seed: 1).map { hans[$0] }
        let options = PredictionOptions(maxLength: 128)
        let enc = try encodeAll(picked, tokenizer: tok, options: options)
        let (partners, unmatched) = try overlapRemoved(
            picked, encodings: enc, pool: hans, tokenizer: tok, options: options, seed: 3)
        XCTAssertLessThan(unmatched, 4, "almost every pair finds a partner")
        for c in plottedHANSSubcases {
            XCTAssertTrue(partners.contains { picked[$0.clean].subcase == c }, "\(c) has partners")
        }
        for (i, corrupted) in partners {
            XCTAssertEqual(corrupted.inputIds.count, enc[i].inputIds.count)
            // The premise's tokens are unchanged, the hypothesis shares no content word with the premise.
            let seg = PairSegments(enc[i])!
            XCTAssertEqual(
                Array(corrupted.inputIds[0...seg.separators[0]]), Array(enc[i].inputIds[0...seg.separators[0]]))
            let original = picked[i]
            let donor = hans.first { e in
                e.subcase == original.subcase && e.pair != original.pair
                    && (try? encodeAll([Example(text: original.text, pair: e.pair)], tokenizer: tok, options: options))?[
                        0
                    ]
                    .inputIds == corrupted.inputIds
            }
            let pair = try XCTUnwrap(donor?.pair, "the new hypothesis comes from a pair of the same subcase")
            XCTAssertTrue(contentWords(pair).isDisjoint(with: contentWords(original.text)), pair)
        }
        let again = try overlapRemoved(picked, encodings: enc, pool: hans, tokenizer: tok, options: options, seed: 3)
        XCTAssertEqual(again.partners.map(\.corrupted.inputIds), partners.map(\.corrupted.inputIds))
    }

    /// Seeded samples keep their strata: equal shares, file order, all of a small stratum.
    func testStratifiedSamples() {
        let xs = (0..<100).map { Example(text: "\($0)", subcase: $0 < 10 ? "small" : $0 < 60 ? "a" : "b") }
        let s = stratifiedSample(xs, count: 30, seed: 4)
        XCTAssertEqual(s.count, 30)
        XCTAssertEqual(s, s.sorted())
        XCTAssertEqual(s.filter { $0 < 10 }.count, 10)  // a third of 30 each: small gives its ten
        XCTAssertEqual(s.filter { (10..<60).contains($0) }.count, 10)
        XCTAssertEqual(stratifiedSample(xs, count: 30, seed: 4), s)
        XCTAssertNotEqual(stratifiedSample(xs, count: 30, seed: 5), s)
        let per = perStratumSample(xs, perStratum: 3, strata: ["a", "small"], seed: 1)
        XCTAssertEqual(per.count, 6)
        XCTAssertTrue(per.allSatisfy { $0 < 60 })
        XCTAssertEqual(stratifiedSample(xs, count: 500, seed: 1).count, 100)
    }
}
