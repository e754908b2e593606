// The small blocks the composition shares: the losses and their gradient, the [CLS] rows' gather and scatter —
// against direct evaluations, not the code under test.
import Foundation
import Kernels
import TestSupport
import XCTest

@testable import Model

final class BlockPiecesTests: XCTestCase {
    /// KL of logits to a target, and its gradient (p − t)/B, against a direct evaluation.
    func testDistributionLoss() {
        let logits: [Float] = [1, 2, 0.5, -1, 0, 3]
        let targets = [0.2, 0.5, 0.3, 0.1, 0.1, 0.8]
        let (kl, d) = distributionLoss(logits: logits, targets: targets, classes: 3, kl: true)
        var expected = 0.0
        var grad: [Double] = []
        for b in 0..<2 {
            let row = (0..<3).map { Double(logits[b * 3 + $0]) }
            let z = row.map { exp($0) }.reduce(0, +)
            for c in 0..<3 {
                let p = exp(row[c]) / z
                let t = targets[b * 3 + c]
                expected += t * log(t / p) / 2
                grad.append((p - t) / 2)
            }
        }
        XCTAssertEqual(kl, expected, accuracy: 1e-12)
        for (a, b) in zip(d, grad) { XCTAssertEqual(Double(a), b, accuracy: 1e-7) }
        let (ce, _) = distributionLoss(logits: logits, targets: oneHot([1, 2], classes: 3), classes: 3, kl: false)
        XCTAssertEqual(ce, -(logSoftmaxDouble([1, 2, 0.5])[1] + logSoftmaxDouble([-1, 0, 3])[2]) / 2, accuracy: 1e-12)
    }

    func testCLSRowsGatherInPlaceAndScatter() {
        let offsets = [0, 3, 4, 8]
        let width = 2
        var x = (0..<16).map(Float.init)
        x.withUnsafeMutableBufferPointer { p in
            gatherCLS(p.baseAddress!, into: p.baseAddress!, offsets: offsets, width: width)
        }
        XCTAssertEqual(Array(x[0..<6]), [0, 1, 6, 7, 8, 9])
        var y = [Float](repeating: 7, count: 16)
        let src: [Float] = [1, 2, 3, 4, 5, 6]
        y.withUnsafeMutableBufferPointer { p in
            scatterCLS(src, into: p.baseAddress!, offsets: offsets, width: width, zeroOthers: true)
        }
        XCTAssertEqual(y, [1, 2, 0, 0, 0, 0, 3, 4, 5, 6, 0, 0, 0, 0, 0, 0])
    }
}
