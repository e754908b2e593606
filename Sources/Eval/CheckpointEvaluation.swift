// The learning-dynamics experiment (the reference's eval-mnli-all-checkpts.py, its acc_over_ft results): every
// checkpoint a fine-tuning run kept (OUT/checkpoint-STEP/, `hcore finetune --save-steps`) evaluated as a full
// model on the same sets, tokenized once, one result per checkpoint in step order.
import Checkpoint
import Failures
import Foundation
import Model
import Tokenizer

/// The step of a folder named `checkpoint-STEP` (decimal digits, as the Trainer writes them); nil for other names.
func checkpointStep(_ name: String) -> Int? {
    guard name.hasPrefix("checkpoint-") else { return nil }
    let digits = name.dropFirst("checkpoint-".count)
    guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
    return try? Checked.integer(String(digits), in: 0...1_000_000_000, name)
}

/// The folders named checkpoint-STEP directly under `folder`, by step.
public func checkpointFolders(_ folder: String) throws -> [(step: Int, path: String)] {
    guard let names = try? FileManager.default.contentsOfDirectory(atPath: folder) else {
        throw DataError.badFile(path: folder, reason: "is not a readable folder")
    }
    // "checkpoint-05" beside "checkpoint-5" would be one step twice: a step spelt twice is refused.
    var byStep: [Int: String] = [:]
    for n in names {
        guard let step = checkpointStep(n) else { continue }
        if let other = byStep.updateValue(folder + "/" + n, forKey: step) {
            throw DataError.badFile(
                path: folder, reason: "holds step \(step) twice (\(other) and \(n)); keep one of them")
        }
    }
    let found = byStep.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
    guard !found.isEmpty else {
        throw DataError.badFile(
            path: folder,
            reason: "has no checkpoint-STEP folders (a fine-tuning run keeps them when it saves checkpoints)")
    }
    return found.map { (step: $0.0, path: $0.1) }
}

/// Each checkpoint as the full model on the datasets: the sets are read and tokenized once, with the first
/// checkpoint's tokenizer (every checkpoint of one run has the same). Results are named "checkpoint-STEP".
public func evaluateCheckpoints(
    _ checkpoints: [(step: Int, path: String)], data: [String], keys: Dataset.Keys, skipBadRows: Bool,
    limit: ExampleLimit?, options: PredictionOptions, warn: (String) -> Void,
    progress: ((Int) -> Void)? = nil
) throws -> (prepared: [PreparedDataset], results: [TargetResult], fingerprints: [String]) {
    guard let first = checkpoints.first else { throw SettingError("checkpoints", "holds no checkpoint to evaluate") }
    let tokenizer = try BertTokenizer.load(folder: first.path)
    var prepared: [PreparedDataset] = []
    var results: [TargetResult] = []
    var fingerprints: [String] = []
    for (k, c) in checkpoints.enumerated() {
        let model = try BertModel.load(folder: c.path)
        if prepared.isEmpty {
            prepared = try prepareDatasets(
                data, keys: keys, skipBadRows: skipBadRows, limit: limit, model: model, tokenizer: tokenizer,
                options: options, warn: warn)
        }
        var target = EvalTarget.full
        (target.name, target.index, target.seed, target.step) = ("checkpoint-\(c.step)", k, .null, c.step)
        let done = results.count * prepared.reduce(0) { $0 + $1.encodings.count }
        results += try evaluateTargets(
            model: model, datasets: prepared, targets: [target], ablation: .zero, batchSize: options.batchSize,
            keepLogits: false, progress: { progress?(done + $0) })
        fingerprints.append(model.fingerprint)
    }
    return (prepared, results, fingerprints)
}

/// The document of `hcore eval --checkpoints FOLDER`: one result per checkpoint (with its step); the
/// fingerprint is the last checkpoint's.
public func checkpointsDocument(
    _ folder: String, data: [String], keys: Dataset.Keys, skipBadRows: Bool, limit: ExampleLimit?,
    options: PredictionOptions, warn: (String) -> Void
) throws -> EvalDocument {
    let list = try checkpointFolders(folder)
    let started = Date()
    warn(
        "evaluating \(list.count) checkpoints of \(folder): steps \(list.map { String($0.step) }.joined(separator: ", "))"
    )
    let (prepared, results, fingerprints) = try evaluateCheckpoints(
        list, data: data, keys: keys, skipBadRows: skipBadRows, limit: limit,
        options: options, warn: warn)
    return EvalDocument(
        modelPath: folder, fingerprint: fingerprints.last!, store: nil, ablation: "none", maskMode: "binary",
        maxLength: options.maxLength, shard: "1/1", subnetworksTotal: results.count, prepared: prepared,
        results: results,
        seconds: Date().timeIntervalSince(started))
}
