// The pieces every driver shares: unit names, AdamW, the schedule, shuffling, hard-concrete sampling,
// losses, [CLS] rows — each against values derived by hand, not from the code under test.
import Foundation
import Kernels
import XCTest

@testable import Model

final class SharedPiecesTests: XCTestCase {
    func testUnitSpellingsParseAndPrintAsTheReference() {
        XCTAssertEqual(PrunableUnit("a4.h3"), .head(4, 3))
        XCTAssertEqual(PrunableUnit("a2.mlp"), .mlp(2))
        for s in ["l4.h3", "L4H3", "4.3", "4:3", " a4.h3 "] { XCTAssertEqual(PrunableUnit(s), .head(4, 3), s) }
        for s in ["m2", "mlp2", "l2.mlp"] { XCTAssertEqual(PrunableUnit(s), .mlp(2), s) }
        for s in ["", "a", "a4", "a-1.h2", "a4.h", "x4.h3", "a4.h3.h2", "mlp"] { XCTAssertNil(PrunableUnit(s), s) }
        XCTAssertEqual(PrunableUnit.head(4, 3).description, "a4.h3")
        XCTAssertEqual(PrunableUnit.mlp(2).description, "a2.mlp")
    }

    func testUnitStoreOrder() {
        // 2 layers × 3 heads: indices 0…5 are heads layer-major, 6 and 7 the MLPs.
        let expected: [PrunableUnit] = [
            .head(0, 0), .head(0, 1), .head(0, 2), .head(1, 0), .head(1, 1), .head(1, 2), .mlp(0), .mlp(1),
        ]
        XCTAssertEqual((0..<8).map { PrunableUnit(index: $0, layers: 2, heads: 3) }, expected)
        XCTAssertEqual(expected.map { $0.index(layers: 2, heads: 3) }, Array(0..<8))
        XCTAssertEqual(expected.shuffled().sorted(), expected)
    }

    func testMaskSparsity() {
        let m = MaskValues(heads: [[1, 0, 1], [0, 0, 1]], mlps: [1, 0])
        XCTAssertEqual(m.sparsity, 4.0 / 8.0)
    }

    /// Adam's first step moves every parameter by lr·sign(g) (m̂ = g, v̂ = g²), after decoupled decay.
    func testAdamWFirstStepIsSignStep() {
        var state = AdamWState(count: 3, weightDecay: 0.01)
        var p = [1.0, -2.0, 0.5]
        let g = [0.3, -4.0, 1e-3]
        state.step(&p, grad: g, lr: 0.1)
        let expected = zip([1.0, -2.0, 0.5], g).map { p0, gi in p0 - 0.1 * 0.01 * p0 - 0.1 * gi / (abs(gi) + 1e-8) }
        for (a, b) in zip(p, expected) { XCTAssertEqual(a, b, accuracy: 1e-12) }
        // The same update in Float agrees to Float precision.
        var opt = AdamW(weightDecay: 0.01)
        let (c1, c2) = opt.nextStep()
        var pf: Float = 1
        var m: Float = 0
        var v: Float = 0
        opt.update(&pf, m: &m, v: &v, grad: 0.3, lr: 0.1, c1: Float(c1), c2: Float(c2))
        XCTAssertEqual(pf, Float(expected[0]), accuracy: 1e-6)
    }

    /// transformers' get_linear_schedule_with_warmup (values from its formula, as the trajectory golden records).
    func testScheduleWarmsUpThenDecays() {
        XCTAssertEqual(learningRateFactor(step: 0, warmup: 4, total: 12), 0)
        XCTAssertEqual(learningRateFactor(step: 3, warmup: 4, total: 12), 0.75)
        XCTAssertEqual(learningRateFactor(step: 4, warmup: 4, total: 12), 1)
        XCTAssertEqual(learningRateFactor(step: 8, warmup: 4, total: 12), 0.5)
        XCTAssertEqual(learningRateFactor(step: 12, warmup: 4, total: 12), 0)
        XCTAssertEqual(learningRateFactor(step: 0, warmup: 0, total: 10), 1)
    }

    func testShuffleIsFisherYatesFromTheTop() {
        var a = Array(0..<50)
        var rng = SplitMix64(seed: 9)
        rng.shuffle(&a)
        var b = Array(0..<50)
        var r2 = SplitMix64(seed: 9)
        var i = 49
        while i > 0 {
            let j = Int(r2.next() % UInt64(i + 1))
            (b[i], b[j]) = (b[j], b[i])
            i -= 1
        }
        XCTAssertEqual(a, b)
        XCTAssertEqual(a.sorted(), Array(0..<50))
        XCTAssertNotEqual(a, Array(0..<50))
    }

    /// z = clamp(1.2·σ((log u − log(1−u) + log α)/T) − 0.1, 0, 1) with T = 2/3, and its derivative by
    /// central differences.
    func testHardConcreteSampleAndDerivative() {
        for (la, u) in [(0.3, 0.4), (-1.0, 0.7), (2.0, 0.2), (8.0, 0.9), (-8.0, 0.1)] {
            let s = 1 / (1 + exp(-(log(u) - log(1 - u) + la) / (2.0 / 3.0)))
            let expected = min(1, max(0, 1.2 * s - 0.1))
            let (z, dz) = HardConcrete.sampleWithDerivative(logAlpha: la, u: u)
            XCTAssertEqual(Double(z), expected, accuracy: 1e-7)
            XCTAssertEqual(HardConcrete.sample(logAlpha: Float(la), u: Float(u)), z, accuracy: 1e-6)
            let h = 1e-6
            func stretched(_ a: Double) -> Double { 1.2 / (1 + exp(-(log(u) - log(1 - u) + a) / (2.0 / 3.0))) - 0.1 }
            let fd = (min(1, max(0, stretched(la + h))) - min(1, max(0, stretched(la - h)))) / (2 * h)
            XCTAssertEqual(dz, fd, accuracy: 1e-5)
        }
    }

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
