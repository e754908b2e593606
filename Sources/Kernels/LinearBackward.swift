// The backward pass of a Linear layer y = x·Wᵀ + b (HF layout, W [out, in]) for weight training:
//
//   dx = dy · W          — `PackedLinear.transposedForBackward()` packs Wᵀ so the forward GEMM computes it
//   dW += dyᵀ · x        — `accumulateLinearGradients`: both operands transposed into [features, tokens]
//   db += Σ_t dy[t]        rows, so the same packed GEMM (K = tokens) does the work
//
// Packing costs O(out·in + tokens·in) per call against the GEMM's O(tokens·out·in): negligible for
// BERT shapes. Naive twin: `linearGradientsReference`.

/// `dst[c, r] = src[r, c]` for a [rows, cols] matrix with row stride `ld`.
public func transpose(_ src: UnsafePointer<Float>, rows: Int, cols: Int, ld: Int, into dst: UnsafeMutablePointer<Float>)
{
    // 16×16 blocks keep both sides in cache.
    var r0 = 0
    while r0 < rows {
        let r1 = min(rows, r0 + 16)
        var c0 = 0
        while c0 < cols {
            let c1 = min(cols, c0 + 16)
            for r in r0..<r1 { for c in c0..<c1 { dst[c * rows + r] = src[r * ld + c] } }
            c0 = c1
        }
        r0 = r1
    }
}

/// dW [out, in] += dyᵀ·x and db [out] += column sums of dy, for dy [rows, out] and x [rows, in]
/// (row strides ldy, ldx).
public func accumulateLinearGradients(
    dy: UnsafePointer<Float>, ldy: Int, x: UnsafePointer<Float>, ldx: Int, rows: Int,
    out: Int, inp: Int, dW: UnsafeMutablePointer<Float>, db: UnsafeMutablePointer<Float>?,
    pool: ThreadPool = .shared
) {
    if rows == 0 { return }
    let dyT = allocateFloats(out * rows)
    let xT = allocateFloats(inp * rows)
    let product = allocateFloats(out * inp)
    defer {
        dyT.deallocate()
        xT.deallocate()
        product.deallocate()
    }
    transpose(dy, rows: rows, cols: out, ld: ldy, into: dyT)  // [out, rows]
    transpose(x, rows: rows, cols: inp, ld: ldx, into: xT)  // [in, rows]
    let packed = PackedLinear(weight: UnsafePointer(xT), bias: nil, n: inp, k: rows)
    gemm(dyT, rows: out, lda: rows, packed, out: product, ldc: inp, epilogue: .none, pool: pool)  // [out, in]
    addVectors(dW, product, count: out * inp)
    if let db {
        for o in 0..<out {
            let row = dyT + o * rows
            var s: Float = 0
            for t in 0..<rows { s += row[t] }
            db[o] += s
        }
    }
}

extension PackedLinear {
    /// Wᵀ packed as a [in, out] Linear without bias: `gemm(dy, …, w.transposedForBackward(), …, .none)` is dy·W.
    public func transposedForBackward() -> PackedLinear {
        let w = unpacked()
        var wt = [Float](repeating: 0, count: w.count)
        w.withUnsafeBufferPointer { src in
            wt.withUnsafeMutableBufferPointer {
                transpose(src.baseAddress!, rows: n, cols: k, ld: k, into: $0.baseAddress!)
            }
        }
        return PackedLinear(weight: wt, bias: nil, n: k, k: n)
    }
}
