// Inside the subnetworks: residuals against numpy's least squares, the permutation p of a correlation against
// an enumeration of every permutation, and path patching inside a subnetwork equal to the masked model's.
import Checkpoint
import Eval
import Foundation
import Kernels
import Model
import TestSupport
import Tokenizer
import XCTest

@testable import Circuits

final class ReadersInsideTests: XCTestCase {
    /// numpy.linalg.lstsq of y on [1, a, b], residuals y − Xβ.
    func testResidualsAgainstNumpy() {
        let y = [0.3, 0.1, 0.5, 0.2, 0.4, 0.35]
        let a = [0.9, 0.8, 0.95, 0.85, 0.9, 0.88]
        let b = [0.99, 0.97, 0.9, 0.98, 0.93, 0.95]
        let want = [
            -0.006415997529338913, -0.014862569487337565, -0.02533971587399597, -0.010639283508338093,
            0.019695799876467135, 0.03756176652254484,
        ]
        for (g, w) in zip(residualize(y, on: [a, b]), want) { XCTAssertEqual(g, w, accuracy: 1e-12) }
        // A covariate that adds nothing (constant) is skipped.
        let centred = residualize(y, on: [[Double](repeating: 2, count: 6)])
        let mean = y.reduce(0, +) / 6
        for (g, w) in zip(centred, y.map { $0 - mean }) { XCTAssertEqual(g, w, accuracy: 1e-12) }
    }

    /// Five points: every one of the 120 orders enumerated gives the exact permutation p of |r|.
    func testPermutationCorrelationAgainstEnumeration() {
        let x = [1.0, 2, 3, 4, 5]
        let y = [2.0, 1, 4, 3, 5]
        func permutations(_ a: [Int]) -> [[Int]] {
            a.count <= 1
                ? [a]
                : a.indices.flatMap { i in
                    permutations(a.enumerated().filter { $0.offset != i }.map(\.element)).map { [a[i]] + $0 }
                }
        }
        let all = permutations(Array(0..<5))
        XCTAssertEqual(all.count, 120)
        let r = pearson(x, y)!
        let exact = Double(all.filter { abs(pearson(x, $0.map { y[$0] })!) >= abs(r) - 1e-12 }.count) / 120
        var rng = SplitMix64(seed: 3)
        let shuffles = (0..<40_000).map { _ -> [Int] in
            var o = Array(0..<5)
            rng.shuffle(&o)
            return o
        }
        let (got, p) = permutationCorrelation(x, y, shuffles)
        XCTAssertEqual(got, 0.8, accuracy: 1e-12)
        XCTAssertEqual(p, exact, accuracy: 0.01)
    }

    /// Patching inside a subnetwork with every mask at 1 is patching the full model.
    func testInsideAnUnmaskedSubnetworkIsTheFullModel() throws {
        let (model, enc, acts) = try tinyHANS(8)
        let senders = PatchSenders(heads: [(0, 1)], mlps: [0])
        let receivers = patchReceivers(senders: senders, layers: 2, heads: 4)
        var settings = PatchSettings()
        settings.subnetwork = (MaskValues.ones(layers: 2, heads: 4), .mean(acts))
        let inside = try pathPatch(
            model: model, batches: [TokenBatch(enc)], senders: senders, receivers: receivers, corruption: .mean(acts),
            entailment: 0, settings: settings)
        let full = try pathPatch(
            model: model, batches: [TokenBatch(enc)], senders: senders, receivers: receivers, corruption: .mean(acts),
            entailment: 0)
        for r in receivers.indices {
            for (a, b) in zip(inside.deltas[r], full.deltas[r]) { XCTAssertEqual(a, b, accuracy: 1e-5) }
        }
    }
}
