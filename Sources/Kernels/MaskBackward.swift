// The backward of a soft mask over one block of a layer's output: y_masked = z·y + (1 − z)·avg, so
// d z = Σ dy ⊙ (y − avg) and d y = dy · z. Vectorised here because the block is a whole layer's rows
// (4,096 × 384 for a MiniLM MLP at B·T = 4,096), where a scalar Double chain of adds ran ~1.7 ms a block.
import Foundation

/// Over a block [rows, width] whose rows are `stride` apart: returns Σ dy ⊙ (y − mean) in Double when `needed`
/// (else 0, not formed) and writes (dy · z) ⊙ dropout into `out` (`out` may be `dy`; dropout rows are `stride`
/// apart too, nil for none). y − mean is formed in Float and each product in Double (exact there), summed in eight
/// Double lanes per half vector, then the lanes; the columns past the last sixteen one by one.
/// Naive twin: `maskBackwardReference`.
public func maskBackward(
    dy: UnsafePointer<Float>, y: UnsafePointer<Float>, rows: Int, width: Int, stride: Int, z: Float,
    mean: UnsafePointer<Float>?, needed: Bool, out: UnsafeMutablePointer<Float>, dropout: UnsafePointer<Float>? = nil
) -> Double {
    let body = width & ~15
    var (sum0, sum1) = (SIMD8<Double>(), SIMD8<Double>())
    var tail = 0.0
    @inline(__always) func load(_ p: UnsafePointer<Float>, _ i: Int) -> Vec16 {
        UnsafeRawPointer(p + i).loadUnaligned(as: Vec16.self)
    }
    for t in 0..<rows {
        let base = t * stride
        var e = 0
        while e < body {
            let g = load(dy, base + e)
            if needed {
                var c = load(y, base + e)
                if let mean { c -= load(mean, e) }
                sum0 += widen(g.lowHalf) * widen(c.lowHalf)
                sum1 += widen(g.highHalf) * widen(c.highHalf)
            }
            var o = g * z
            if let dropout { o *= load(dropout, base + e) }
            UnsafeMutableRawPointer(out + base + e).storeBytes(of: o, as: Vec16.self)
            e += 16
        }
        for e in body..<width {
            let g = dy[base + e]
            if needed { tail += Double(g) * Double(y[base + e] - (mean?[e] ?? 0)) }
            out[base + e] = dropout.map { g * z * $0[base + e] } ?? g * z
        }
    }
    return needed ? (sum0 + sum1).sum() + tail : 0
}
