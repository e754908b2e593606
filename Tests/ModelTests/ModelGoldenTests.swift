// The forward pass against Hugging Face transformers (fp32, eager attention): logits and pooled
// max|Δ| ≤ 1e-4, hidden states |Δ| ≤ 1e-4·max(1, |ref|) (GOLDEN-README.md §3).
import Checkpoint
import Foundation
import Kernels
import Model
import TestSupport
import Tokenizer
import XCTest

final class ModelGoldenTests: XCTestCase {
    func checkGolden(name: String, folder: String, threads: Int = 2) throws {
        let model = try cachedModel(folder)
        let golden = try GoldenOutputs(name)
        let C = model.config.numLabels
        let D = model.hidden
        let wantLogits = try golden.tensors.floats("logits")
        let wantPooled = try golden.tensors.floats("pooled")
        var logits: [Float] = []
        var pooled: [Float] = []
        let pool = ThreadPool.sized(threads)
        for b in golden.batches {
            let batch = TokenBatch(b.map(golden.encoding))
            let rec = HiddenRecorder(dim: D)
            logits += try model.forward(batch, observer: rec, pool: pool)
            pooled += rec.pooled
            // Hidden states of the examples that have them.
            for (k, ex) in golden.hiddenExamples.enumerated() where b.contains(ex) {
                let s = b.firstIndex(of: ex)!
                let rows = batch.offsets[s]..<batch.offsets[s + 1]
                for j in 0...model.layerCount {
                    let want = try golden.tensors.floats("hidden.ex\(k).layer\(j)")
                    let got = Array(rec.layers[j][(rows.lowerBound * D)..<(rows.upperBound * D)])
                    XCTAssertEqual(got.count, want.count, "\(name) ex\(k) layer \(j) length")
                    var worst: Float = 0
                    for i in want.indices where got.count == want.count {
                        worst = max(worst, abs(got[i] - want[i]) / max(1, abs(want[i])))
                    }
                    XCTAssertLessThanOrEqual(worst, 1e-4, "\(name) hidden ex\(k) layer \(j)")
                }
            }
        }
        XCTAssertEqual(logits.count, golden.examples.count * C)
        let dl = maxAbs(logits, wantLogits)
        let dp = maxAbs(pooled, wantPooled)
        XCTAssertLessThanOrEqual(dl, 1e-4, "\(name) logits")
        XCTAssertLessThanOrEqual(dp, 1e-4, "\(name) pooled")
        print("golden \(name) threads=\(threads): max|Δlogits| = \(dl), max|Δpooled| = \(dp)")
    }

    func testTinyBertGolden() throws {
        try checkGolden(name: "tiny-bert", folder: fixtures + "/models/tiny-bert")
    }

    func testMiniLMGolden() throws {
        try checkGolden(name: "minilm-nli", folder: try minilmFolder())
    }

    func testMiniLMGoldenSingleThread() throws {
        try checkGolden(name: "minilm-nli", folder: try minilmFolder(), threads: 1)
    }

    /// Same weights as pytorch_model.bin (read through the safe unpickler) and as model.safetensors.
    func testBinAndSafetensorsAgree() throws {
        let st = try BertModel.load(folder: fixtures + "/models/tiny-bert")
        let bin = try BertModel.load(folder: fixtures + "/models/tiny-bert-bin")
        XCTAssertEqual(st.fingerprint, bin.fingerprint)
        XCTAssertEqual(st.parameterCount, 997_090)
        let golden = try GoldenOutputs("tiny-bert")
        for b in golden.batches {
            let batch = TokenBatch(b.map(golden.encoding))
            XCTAssertEqual(try st.forward(batch), try bin.forward(batch))
        }
    }

    /// Logits of an example do not depend on what else is in its batch, nor on the thread count.
    func testIndependentOfBatchCompositionAndThreads() throws {
        let model = try cachedModel(try minilmFolder())
        let golden = try GoldenOutputs("minilm-nli")
        let all = Array(0..<32)
        let together = try model.forward(TokenBatch(all.map(golden.encoding)), pool: .sized(2))
        let C = model.config.numLabels
        for i in [0, 5, 17, 31] {
            let alone = try model.forward(TokenBatch([golden.encoding(i)]), pool: .sized(1))
            XCTAssertLessThanOrEqual(maxAbs(alone, Array(together[(i * C)..<((i + 1) * C)])), 1e-6)
        }
        let three = try model.forward(TokenBatch(all.map(golden.encoding)), pool: .sized(3))
        XCTAssertEqual(together, three)
    }

    /// Scratch buffers are reused between calls (Model/Scratch.swift): a batch gives bit-identical logits
    /// whether the buffers are fresh, left over from a larger batch, or grown since; two callers at once
    /// each get their own.
    func testReusedScratchChangesNothing() throws {
        let model = try BertModel.load(folder: fixtures + "/models/tiny-bert")  // a fresh model: empty arenas
        let golden = try GoldenOutputs("tiny-bert")
        let small = TokenBatch([golden.encoding(0)])
        let large = TokenBatch(golden.examples.indices.map(golden.encoding))
        let first = try model.forward(small)
        let largeFirst = try model.forward(large)
        XCTAssertEqual(try model.forward(small), first)
        XCTAssertEqual(try model.forward(large), largeFirst)
        final class Results: @unchecked Sendable {
            var values = [[Float]](repeating: [], count: 4)
            let lock = NSLock()
        }
        let results = Results()
        DispatchQueue.concurrentPerform(iterations: 4) { i in
            let r = try! model.forward(i % 2 == 0 ? small : large, pool: .sized(1))
            results.lock.lock()
            results.values[i] = r
            results.lock.unlock()
        }
        let concurrent = results.values
        XCTAssertLessThanOrEqual(maxAbs(concurrent[0], first), 1e-6)
        XCTAssertLessThanOrEqual(maxAbs(concurrent[1], largeFirst), 1e-6)
        XCTAssertEqual(concurrent[0], concurrent[2])
        XCTAssertEqual(concurrent[1], concurrent[3])
    }

    func testBadBatchesAreRefused() throws {
        let model = try cachedModel(fixtures + "/models/tiny-bert")
        var b = TokenBatch()
        b.append(Encoding(inputIds: [101, 99999, 102], tokenTypeIds: [0, 0, 0]))
        XCTAssertThrowsError(try model.forward(b))
        var long = TokenBatch()
        long.append(Encoding(inputIds: Array(repeating: 1000, count: 65), tokenTypeIds: Array(repeating: 0, count: 65)))
        XCTAssertThrowsError(try model.forward(long)) { XCTAssert("\($0)".contains("positions")) }
        var types = TokenBatch()
        types.append(Encoding(inputIds: [101, 102], tokenTypeIds: [0, 2]))
        XCTAssertThrowsError(try model.forward(types))
    }
}
