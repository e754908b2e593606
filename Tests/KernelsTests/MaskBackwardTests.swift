// The soft mask's backward (d z and d y, with and without a mean, dropout and the reduction) against its naive twin.
import TestSupport
import XCTest

@testable import Kernels

final class MaskBackwardTests: XCTestCase {
    /// Widths with and without a tail past the last sixteen, blocks narrower than their row stride (a head's
    /// columns among a layer's), d y written in place and elsewhere.
    func testAgainstNaiveTwin() {
        var rng = SeededRNG(7)
        for (rows, width, stride) in [(1, 1, 1), (5, 16, 48), (7, 21, 21), (33, 32, 96), (4, 384, 384)] {
            let count = (rows - 1) * stride + width
            let dy = rng.floats(count)
            let y = rng.floats(count, scale: 3)
            let mean = rng.floats(width)
            let drop = rng.floats(count).map { $0 > 0 ? Float(1 / 0.9) : 0 }
            for (z, useMean, useDrop, needed) in [
                (Float(0.37), true, true, true), (1, false, false, true), (0.8, true, false, false),
            ] {
                let ref = maskBackwardReference(
                    dy: dy, y: y, rows: rows, width: width, stride: stride, z: z, mean: useMean ? mean : nil,
                    dropout: useDrop ? drop : nil)
                for inPlace in [false, true] {
                    var input = dy
                    var out = inPlace ? dy : [Float](repeating: .nan, count: count)
                    let dz = input.withUnsafeMutableBufferPointer { i in
                        out.withUnsafeMutableBufferPointer { o in
                            mean.withUnsafeBufferPointer { m in
                                drop.withUnsafeBufferPointer { d in
                                    maskBackward(
                                        dy: inPlace ? UnsafePointer(o.baseAddress!) : UnsafePointer(i.baseAddress!),
                                        y: y, rows: rows, width: width, stride: stride, z: z,
                                        mean: useMean ? m.baseAddress! : nil, needed: needed,
                                        out: o.baseAddress!, dropout: useDrop ? d.baseAddress! : nil)
                                }
                            }
                        }
                    }
                    let label = "\(rows)×\(width)/\(stride) z \(z) in place \(inPlace)"
                    if needed {
                        XCTAssertEqual(dz, ref.dz, accuracy: 1e-12 * max(1, abs(ref.dz)), label)
                    } else {
                        XCTAssertEqual(dz, 0, label)
                    }
                    for t in 0..<rows {
                        for e in 0..<width {
                            let i = t * stride + e
                            XCTAssertEqual(out[i], ref.out[i], "\(label) at \(t), \(e)")
                        }
                    }
                    if !inPlace {
                        // Between the block's rows nothing is written.
                        for i in 0..<count where i % stride >= width { XCTAssert(out[i].isNaN, label) }
                    }
                }
            }
        }
    }
}
