// A subnetwork as an ordinary, smaller Hugging Face model: what transformers' prune_heads would leave.
//   pruned head h of layer l  its rows of Q, K and V and its columns of W_O are removed (config `pruned_heads`);
//                             with mean ablation its constant contribution W_O[:, h]·avg_h goes into W_O's bias
//   pruned MLP of layer l     BERT's config cannot remove it: its two weight matrices become zero and its
//                             output bias becomes its mean output (or zero), so it adds exactly that constant
//   a layer with every head   one head stays, its weights zero (transformers cannot run a layer of zero heads):
//   pruned                    its context is 0 and adds nothing; the folded constants carry the rest
// So the exported model computes the masked model's function exactly (to rounding). Transformers 4.x reads
// `pruned_heads` (its prune_heads); transformers 5 dropped head pruning and cannot load such a folder, so
// `keepShapes` writes the same function with every head in place (pruned ones zero) for it.
import Checkpoint
import Eval
import Failures
import Foundation
import Kernels
import Model

public struct ExportSummary: Sendable {
    public var folder: String
    public var bytes: Int, fullBytes: Int
    public var gflops: Double, fullGflops: Double
    public var removedHeads: Int, zeroedMLPs: Int
    public var description: String {
        String(
            format:
                "%@: %d heads removed, %d MLPs zeroed; %.1f MB (the full model %.1f MB); %.3f GFLOP per 128-token pair (the full model %.3f)",
            folder, removedHeads, zeroedMLPs, Double(bytes) / 1e6, Double(fullBytes) / 1e6, gflops, fullGflops)
    }
}

/// Writes `model` with the binary `masks` (ablation: mean activations or zero) as a Hugging Face folder
/// (see the file comment), with the model folder's tokenizer files.
/// With `keepShapes`, no head is removed: pruned heads keep their place with zero weights and the config no
/// `pruned_heads` — the same function, not smaller, for transformers 5, which dropped head pruning.
public func exportSubnetwork(
    model: BertModel, masks: MaskValues, ablation: Ablation, to folder: String, keepShapes: Bool = false
) throws -> ExportSummary {
    try model.checkMasks(masks, ablation)
    guard masks.isBinary else {
        throw ModelError.badInput(
            "only binary masks can be exported as a smaller model (this one has fractional values)")
    }
    let L = model.layerCount
    let H = model.headCount
    let d = model.headDim
    let D = model.hidden
    let I = model.config.intermediateSize
    let source = try TrainableBert(model: model)
    var tensors = Dictionary(
        uniqueKeysWithValues: source.tensors.map { ($0.name, (shape: $0.shape, values: source.values($0.name)!)) })
    var removed: [Int: [Int]] = [:]
    for l in 0..<L {
        let p = "bert.encoder.layer.\(l)."
        // Absent already (a physically pruned model) or pruned by the mask.
        let pruned = (0..<H).filter { masks.heads[l][$0] == 0 || (model.config.prunedHeads[l] ?? []).contains($0) }
        // W_O's bias gains the pruned heads' constant contributions (mean ablation), in Double.
        let wo = tensors[p + "attention.output.dense.weight"]!.values
        var bias = tensors[p + "attention.output.dense.bias"]!.values.map(Double.init)
        if case .mean(let avg) = ablation {
            for h in pruned where !(model.config.prunedHeads[l] ?? []).contains(h) {
                for r in 0..<D {
                    for e in 0..<d {
                        bias[r] += Double(wo[r * D + h * d + e]) * Double(avg.avgHead[(l * H + h) * d + e])
                    }
                }
            }
        }
        tensors[p + "attention.output.dense.bias"]!.values = bias.map(Float.init)
        // One head stays (zeroed) when all would go; the others leave.
        let keep = keepShapes ? Array(0..<H) : pruned.count == H ? [pruned[0]] : (0..<H).filter { !pruned.contains($0) }
        let zeroed = keepShapes ? Set(pruned) : pruned.count == H ? Set([pruned[0]]) : []
        removed[l] = pruned.filter { !keep.contains($0) }
        /// Rows `h·width ..< (h+1)·width` of `values` (`width` each) for the kept heads, zero for a zeroed head.
        func headBlocks(_ values: [Float], width: Int) -> [Float] {
            var out: [Float] = []
            for h in keep {
                out +=
                    zeroed.contains(h)
                    ? [Float](repeating: 0, count: width) : Array(values[(h * width)..<((h + 1) * width)])
            }
            return out
        }
        for part in ["query", "key", "value"] {
            let wName = p + "attention.self.\(part).weight"
            let bName = p + "attention.self.\(part).bias"
            tensors[wName] = (shape: [keep.count * d, D], values: headBlocks(tensors[wName]!.values, width: d * D))
            tensors[bName] = (shape: [keep.count * d], values: headBlocks(tensors[bName]!.values, width: d))
        }
        var woKept: [Float] = []
        for r in 0..<D { woKept += headBlocks(Array(wo[(r * D)..<((r + 1) * D)]), width: d) }
        tensors[p + "attention.output.dense.weight"] = (shape: [D, keep.count * d], values: woKept)
        if masks.mlps[l] == 0 {
            tensors[p + "intermediate.dense.weight"]!.values = [Float](repeating: 0, count: I * D)
            tensors[p + "intermediate.dense.bias"]!.values = [Float](repeating: 0, count: I)
            tensors[p + "output.dense.weight"]!.values = [Float](repeating: 0, count: D * I)
            if case .mean(let avg) = ablation {
                tensors[p + "output.dense.bias"]!.values = Array(avg.avgMLP[(l * D)..<((l + 1) * D)])
            } else {
                tensors[p + "output.dense.bias"]!.values = [Float](repeating: 0, count: D)
            }
        }
    }
    try makeFolder(folder)
    var w = SafetensorsWriter()
    w.metadata = ["format": "pt", "hcore": "subnetwork export"]
    for t in source.tensors { w.add(t.name, shape: tensors[t.name]!.shape, tensors[t.name]!.values) }
    try w.write(to: folder + "/model.safetensors")
    try writeExportConfig(from: model.folder + "/config.json", prunedHeads: removed, to: folder + "/config.json")
    for f in ["vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]
    where FileManager.default.fileExists(atPath: model.folder + "/" + f) {
        try writeAtomically(try readDataFile(model.folder + "/" + f), to: folder + "/" + f)
    }
    func size(_ path: String) -> Int {
        ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int) ?? 0
    }
    var full = MaskValues.ones(layers: L, heads: H)
    for (l, hs) in model.config.prunedHeads { for h in hs { full.heads[l][h] = 0 } }
    return ExportSummary(
        folder: folder, bytes: size(folder + "/model.safetensors"), fullBytes: size(model.weightsPath),
        gflops: model.flops(masks: keepShapes ? full : masks, sequenceLengths: [128]) / 1e9,
        fullGflops: model.flops(masks: full, sequenceLengths: [128]) / 1e9,
        removedHeads: removed.values.reduce(0) { $0 + $1.count }, zeroedMLPs: masks.mlps.filter { $0 == 0 }.count)
}

/// The model's config.json with `pruned_heads` set (layer → removed heads), every other key as it was.
func writeExportConfig(from path: String, prunedHeads: [Int: [Int]], to out: String) throws {
    guard var config = (try? JSONSerialization.jsonObject(with: Data(try readDataFile(path)))) as? [String: Any] else {
        throw CheckpointError.malformed(path: path, offset: nil, reason: "config.json is not a JSON object")
    }
    config["pruned_heads"] = Dictionary(
        uniqueKeysWithValues: prunedHeads.filter { !$0.value.isEmpty }.map { (String($0.key), $0.value.sorted()) })
    try writeAtomically(
        Array(try JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted, .sortedKeys])) + [10],
        to: out)
}

/// `hcore store export --hf-folder`: the subnetwork `name` of `store` (or a --mask file) of the model at
/// `modelFolder`, ablated as the store's activation set, --activations, or zero says.
public func exportSubnetwork(
    store: String?, name: String?, mask: MaskChoice, activationSet: String?, modelFolder: String?, to folder: String,
    keepShapes: Bool = false, warn: (String) -> Void
) throws -> ExportSummary {
    guard let modelFolder else {
        throw UsageError("--hf-folder needs --model DIR: the model the subnetwork belongs to")
    }
    let model = try BertModel.load(folder: modelFolder)
    let chosen = try EvalSelection.single(
        store: store, subnetwork: name, mask: mask, activationSet: activationSet, model: model, warn: warn)
    guard let masks = chosen.masks else {
        throw UsageError("name the subnetwork to export: --name NAME (with a store) or --mask FILE")
    }
    return try exportSubnetwork(
        model: model, masks: masks, ablation: chosen.ablation, to: folder, keepShapes: keepShapes)
}
