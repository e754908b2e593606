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
    model: BertModel, masks: MaskValues, ablation: Ablation, to folder: String, keepShapes: Bool = false,
    replacing: Bool = false
) throws -> ExportSummary {
    try model.checkMasks(masks, ablation)
    guard masks.isBinary else {
        throw ModelError.badInput(
            "only binary masks can be exported as a smaller model (this one has fractional values)")
    }
    let source = try TrainableBert(model: model)
    var tensors = ExportTensors(
        Dictionary(
            uniqueKeysWithValues: source.tensors.map { ($0.name, (shape: $0.shape, values: source.values($0.name)!)) }
        ))
    var removed: [Int: [Int]] = [:]
    for l in 0..<model.layerCount {
        let absent = model.config.prunedHeads[l] ?? []
        let byMask = (0..<model.headCount).filter { masks.heads[l][$0] == 0 && !absent.contains($0) }
        // W_O's bias gains the pruned heads' constant contributions (the mean-ablation fold).
        tensors[bias: BertTensorNames.layer(l).attentionOutput] = ablation.foldedOutputBias(
            model.layers[l].attentionOutput, layer: l, pruned: byMask, heads: model.headCount, headDim: model.headDim)
        removed[l] = tensors.removeHeads(
            layer: l, pruned: (byMask + absent).sorted(), model: model, keepShapes: keepShapes)
        if masks.mlps[l] == 0 {
            tensors.replaceMLP(layer: l, constant: ablation.mlpConstant(layer: l, hidden: model.hidden))
        }
    }
    try makeModelFolder(folder, replacing: replacing, inputs: [model.folder])
    var w = SafetensorsWriter()
    w.metadata = ["format": "pt", "hcore": "subnetwork export"]
    for t in source.tensors { w.add(t.name, shape: tensors.all[t.name]!.shape, tensors.all[t.name]!.values) }
    try w.write(to: folder + "/model.safetensors")
    try writeExportConfig(from: model.folder + "/config.json", prunedHeads: removed, to: folder + "/config.json")
    for f in ["vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]
    where FileManager.default.fileExists(atPath: model.folder + "/" + f) {
        try writeAtomically(try readDataFile(model.folder + "/" + f), to: folder + "/" + f)
    }
    func size(_ path: String) -> Int {
        ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int) ?? 0
    }
    var full = MaskValues.ones(layers: model.layerCount, heads: model.headCount)
    for (l, hs) in model.config.prunedHeads { for h in hs { full.heads[l][h] = 0 } }
    return ExportSummary(
        folder: folder, bytes: size(folder + "/model.safetensors"), fullBytes: size(model.weightsPath),
        gflops: model.flops(masks: keepShapes ? full : masks, sequenceLengths: [128]) / 1e9,
        fullGflops: model.flops(masks: full, sequenceLengths: [128]) / 1e9,
        removedHeads: removed.values.reduce(0) { $0 + $1.count }, zeroedMLPs: masks.mlps.filter { $0 == 0 }.count)
}

/// A model's tensors by Hugging Face name, edited into a subnetwork's.
struct ExportTensors {
    var all: [String: (shape: [Int], values: [Float])]
    init(_ all: [String: (shape: [Int], values: [Float])]) { self.all = all }

    subscript(bias module: String) -> [Float] {
        get { all[BertTensorNames.prefix + BertTensorNames.bias(module)]!.values }
        set { all[BertTensorNames.prefix + BertTensorNames.bias(module)]!.values = newValue }
    }

    /// Removes the pruned heads' rows of Q, K, V and columns of W_O; returns the heads removed. One head stays
    /// (zeroed) when all would go; with `keepShapes` every head stays, the pruned ones zeroed.
    mutating func removeHeads(layer l: Int, pruned: [Int], model: BertModel, keepShapes: Bool) -> [Int] {
        let (H, d, D) = (model.headCount, model.headDim, model.hidden)
        let keep = keepShapes ? Array(0..<H) : pruned.count == H ? [pruned[0]] : (0..<H).filter { !pruned.contains($0) }
        let zeroed = keepShapes ? Set(pruned) : pruned.count == H ? Set([pruned[0]]) : []
        /// Rows `h·width ..< (h+1)·width` of `values` (`width` each) for the kept heads, zero for a zeroed head.
        func headBlocks(_ values: ArraySlice<Float>, width: Int) -> [Float] {
            keep.flatMap { h in
                zeroed.contains(h)
                    ? [Float](repeating: 0, count: width)
                    : Array(values[(values.startIndex + h * width)..<(values.startIndex + (h + 1) * width)])
            }
        }
        let names = BertTensorNames.layer(l)
        let prefix = BertTensorNames.prefix
        for module in [names.query, names.key, names.value] {
            let (w, b) = (prefix + BertTensorNames.weight(module), prefix + BertTensorNames.bias(module))
            all[w] = (shape: [keep.count * d, D], values: headBlocks(all[w]!.values[...], width: d * D))
            all[b] = (shape: [keep.count * d], values: headBlocks(all[b]!.values[...], width: d))
        }
        let wo = prefix + BertTensorNames.weight(names.attentionOutput)
        let old = all[wo]!.values
        all[wo] = (
            shape: [D, keep.count * d],
            values: (0..<D).flatMap { r in headBlocks(old[(r * D)..<((r + 1) * D)], width: d) }
        )
        return pruned.filter { !keep.contains($0) }
    }

    /// A pruned MLP: BERT's config cannot remove it, so its weights become zero and its output bias its constant
    /// output, which it then adds exactly.
    mutating func replaceMLP(layer l: Int, constant: [Float]) {
        let names = BertTensorNames.layer(l)
        let prefix = BertTensorNames.prefix
        for module in [names.intermediate, names.output] {
            let w = prefix + BertTensorNames.weight(module)
            all[w]!.values = [Float](repeating: 0, count: all[w]!.values.count)
        }
        let b = prefix + BertTensorNames.bias(names.intermediate)
        all[b]!.values = [Float](repeating: 0, count: all[b]!.values.count)
        self[bias: names.output] = constant
    }
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
