// The tests the circuits commands attach to their claims: Benjamini–Hochberg across many tests, and a
// measurement against a handful of control measurements (Student's t prediction test).
import Foundation

/// Benjamini–Hochberg adjusted p-values (q-values), in the order given: q_(i) = min over j ≥ i of
/// p_(j)·m/j, p sorted ascending, capped at 1. NaN p-values stay NaN and do not count in m.
public func benjaminiHochberg(_ p: [Double]) -> [Double] {
    let valid = p.indices.filter { !p[$0].isNaN }
    let m = Double(valid.count)
    var q = [Double](repeating: .nan, count: p.count)
    var running = 1.0
    for (rank, i) in valid.sorted(by: { p[$0] < p[$1] }).enumerated().reversed() {
        running = min(running, p[i] * m / Double(rank + 1))
        q[i] = running
    }
    return q
}

/// Is `x` drawn from the distribution of `controls`? Two-sided p of Student's t prediction test: t = (x − mean)
/// / (s·√(1 + 1/n)) with n − 1 degrees of freedom, exact when the controls and x are normal with one variance.
/// NaN with fewer than 2 controls or none varying.
public func predictionTestP(_ x: Double, controls: [Double]) -> Double {
    let n = Double(controls.count)
    guard controls.count >= 2 else { return .nan }
    let mean = controls.reduce(0, +) / n
    let s = (controls.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / (n - 1)).squareRoot()
    guard s > 0 else { return x == mean ? 1 : 0 }
    let t = (x - mean) / (s * (1 + 1 / n).squareRoot())
    return 2 * studentTUpperTail(abs(t), degrees: n - 1)
}

/// P(T > t) for Student's t with ν degrees of freedom: I_{ν/(ν+t²)}(ν/2, 1/2) / 2 for t ≥ 0.
public func studentTUpperTail(_ t: Double, degrees nu: Double) -> Double {
    guard t.isFinite else { return t > 0 ? 0 : 1 }
    let tail = 0.5 * regularizedIncompleteBeta(nu / (nu + t * t), a: nu / 2, b: 0.5)
    return t >= 0 ? tail : 1 - tail
}

/// I_x(a, b) by its continued fraction (Lentz's method), using the symmetry I_x(a, b) = 1 − I_{1−x}(b, a) where
/// the fraction converges slowly.
public func regularizedIncompleteBeta(_ x: Double, a: Double, b: Double) -> Double {
    if x <= 0 { return 0 }
    if x >= 1 { return 1 }
    let logBeta: Double = lgamma(a + b) - lgamma(a) - lgamma(b)
    let logFront: Double = logBeta + a * log(x) + b * log(1 - x)
    if x > (a + 1) / (a + b + 2) { return 1 - regularizedIncompleteBeta(1 - x, a: b, b: a) }
    let tiny = 1e-300
    var c = 1.0
    var d = 1 - (a + b) * x / (a + 1)
    d = abs(d) < tiny ? tiny : d
    d = 1 / d
    var f = d
    for m in 1...400 {
        let m = Double(m)
        for even in [true, false] {
            let num: Double
            if even {
                let top: Double = m * (b - m) * x
                num = top / ((a + 2 * m - 1) * (a + 2 * m))
            } else {
                let top: Double = -(a + m) * (a + b + m) * x
                num = top / ((a + 2 * m) * (a + 2 * m + 1))
            }
            d = 1 + num * d
            d = abs(d) < tiny ? tiny : d
            c = 1 + num / c
            c = abs(c) < tiny ? tiny : c
            d = 1 / d
            f *= c * d
            if !even && abs(c * d - 1) < 1e-15 { return exp(logFront) * f / a }
        }
    }
    return exp(logFront) * f / a
}
