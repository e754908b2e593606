// The attention summary against a direct count over each pair's own patterns (one pair per pass).
import Checkpoint
import Eval
import Foundation
import Kernels
import Model
import TestSupport
import Tokenizer
import XCTest

@testable import Circuits

final class AttentionSummaryTests: XCTestCase {
    func testAgainstPerPairPatterns() throws {
        let (model, enc, _) = try tinyHANS(6)
        let got = try attentionSummary(model: model, encodings: enc, batchSize: 4)
        let (L, H) = (2, 4)
        var same = [Double](repeating: 0, count: L * H)
        var sep = [Double](repeating: 0, count: L * H)
        var cls = [Double](repeating: 0, count: L * H)
        var (queries, matched, uniform) = (0, 0, 0.0)
        for e in enc {
            let T = e.inputIds.count
            let batch = TokenBatch([e])
            let p = AttentionPatterns(
                tokens: [String](repeating: "", count: T), sequence: 0, of: batch,
                patterns: try model.attentionPatterns(batch), heads: H)
            let firstHyp = e.tokenTypeIds.firstIndex(of: 1)!
            let premise = Array(1..<(firstHyp - 1))
            let hypothesis = Array(firstHyp..<(T - 1))
            for i in premise + hypothesis {
                queries += 1
                let other = premise.contains(i) ? hypothesis : premise
                let m = other.filter { e.inputIds[$0] == e.inputIds[i] }
                if !m.isEmpty {
                    matched += 1
                    uniform += Double(m.count) / Double(T)
                }
                for l in 0..<L {
                    for h in 0..<H {
                        func w(_ j: Int) -> Double { Double(p.weight(layer: l, head: h, query: i, key: j)) }
                        same[l * H + h] += m.reduce(0) { $0 + w($1) }
                        sep[l * H + h] += w(firstHyp - 1) + w(T - 1)
                        cls[l * H + h] += w(0)
                    }
                }
            }
        }
        XCTAssertGreaterThan(matched, 0)
        for u in 0..<(L * H) {
            XCTAssertEqual(got[u].sameWord, same[u] / Double(matched), accuracy: 1e-6)
            XCTAssertEqual(got[u].sameWordUniform, uniform / Double(matched), accuracy: 1e-9)
            XCTAssertEqual(got[u].separators, sep[u] / Double(queries), accuracy: 1e-6)
            XCTAssertEqual(got[u].cls, cls[u] / Double(queries), accuracy: 1e-6)
        }
    }
}
