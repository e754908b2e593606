import Foundation
import Kernels

func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

func benchGemm(m: Int, n: Int, k: Int, pool: ThreadPool, reps: Int = 5) -> Double {
    let x = allocateFloats(m * k), out = allocateFloats(m * n)
    for i in 0..<(m * k) { x[i] = Float(i % 7) * 0.01 }
    let w = [Float](repeating: 0.01, count: n * k), b = [Float](repeating: 0, count: n)
    let p = PackedLinear(weight: w, bias: b, n: n, k: k)
    gemm(x, rows: m, lda: k, p, out: out, ldc: n, epilogue: .bias, pool: pool)
    var best = Double.infinity
    for _ in 0..<reps {
        let t = now()
        gemm(x, rows: m, lda: k, p, out: out, ldc: n, epilogue: .bias, pool: pool)
        best = min(best, now() - t)
    }
    return 2 * Double(m * n * k) / best / 1e9
}

if CommandLine.arguments.count == 1 { for threads in [1, 2] {
    let pool = ThreadPool.sized(threads)
    for (m, n, k) in [(4096, 2304, 768), (4096, 768, 768), (4096, 3072, 768), (4096, 768, 3072), (128, 768, 768), (600, 384, 384)] {
        print("threads \(threads) \(m)x\(n)x\(k): \(String(format: "%.1f", benchGemm(m: m, n: n, k: k, pool: pool))) GFLOP/s")
    }
} }

import Model
import Tokenizer
import Checkpoint
if CommandLine.arguments.count > 1 {
    let folder = CommandLine.arguments[1]
    let model = try BertModel.load(folder: folder)
    let tok = try BertTokenizer.load(folder: folder)
    let text = String(decoding: try readDataFile("data/hans/heuristics_evaluation_set.txt.zst"), as: UTF8.self)
    let rows = text.split(separator: "\n").dropFirst().prefix(2048).map { $0.split(separator: "\t", omittingEmptySubsequences: false) }
    var t = now()
    let enc = try rows.map { try tok.encode(String($0[5]), pair: String($0[6]), maxLength: 128) }
    print("tokenize \(now() - t)")
    let order = enc.indices.sorted { enc[$0].count < enc[$1].count }
    t = now()
    for s in stride(from: 0, to: order.count, by: 32) {
        _ = try model.forward(TokenBatch(order[s..<min(order.count, s + 32)].map { enc[$0] }))
    }
    let dt = now() - t
    print("forward \(dt) s, \(Double(enc.count) / dt) pairs/s")
}
