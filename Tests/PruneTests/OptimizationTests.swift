// The training loops' shared pieces: AdamW's first step, the warm-up/decay schedule, the Fisher–Yates shuffle and
// hard-concrete sampling — each against values derived by hand.
import Foundation
import Kernels
import Model
import Optimization
import Prune
import TestSupport
import XCTest

final class OptimizationTests: XCTestCase {
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
}
