// The classifier reads each sequence's first ([CLS]) row. Sequences are concatenated (TokenBatch.offsets),
// so these gather the B [CLS] rows of an [N, width] buffer into a compact [B, width] one and scatter back.
import Kernels

/// dst[s] ← src[offsets[s]] for every sequence s (`width` values of src rows `stride` apart, width by default).
/// In place (dst == src, stride == width) is allowed: offsets[s] ≥ s and the rows are visited in ascending order,
/// so no row is overwritten before it is read.
package func gatherCLS(
    _ src: UnsafePointer<Float>, into dst: UnsafeMutablePointer<Float>, offsets: [Int], width: Int, stride: Int? = nil
) {
    for s in 0..<(offsets.count - 1) {
        let from = src + offsets[s] * (stride ?? width)
        let to = dst + s * width
        if UnsafePointer(to) != from { to.update(from: from, count: width) }
    }
}

/// dst[offsets[s]] ← src[s]; with `zeroOthers`, every other row of dst [N, width] is set to 0 first.
package func scatterCLS(
    _ src: UnsafePointer<Float>, into dst: UnsafeMutablePointer<Float>, offsets: [Int], width: Int,
    zeroOthers: Bool = false
) {
    if zeroOthers { dst.update(repeating: 0, count: offsets.last! * width) }
    for s in 0..<(offsets.count - 1) { (dst + offsets[s] * width).update(from: src + s * width, count: width) }
}

/// dst[offsets[s]] += src[s] for every sequence s.
package func scatterAddCLS(
    _ src: UnsafePointer<Float>, into dst: UnsafeMutablePointer<Float>, offsets: [Int], width: Int
) {
    for s in 0..<(offsets.count - 1) { addVectors(dst + offsets[s] * width, src + s * width, count: width) }
}
