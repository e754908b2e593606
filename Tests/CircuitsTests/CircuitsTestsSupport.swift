// What the circuits tests share: tiny-bert on the first HANS pairs, with their mean activations.
import Checkpoint
import Eval
import Foundation
import Kernels
import Model
import Store
import TestSupport
import Tokenizer
import XCTest

@testable import Circuits

/// tiny-bert, the first `count` HANS evaluation pairs and their mean activations.
func tinyHANS(_ count: Int) throws -> (BertModel, [Encoding], MeanActivations) {
    let folder = repoRoot + "/Tests/Fixtures/models/tiny-bert"
    let model = try BertModel.load(folder: folder)
    let tok = try BertTokenizer.load(folder: folder)
    let data = try Dataset.load(repoRoot + "/data/hans/heuristics_evaluation_set.txt.zst", limit: count)
    let enc = try encodeAll(data.examples, tokenizer: tok, options: PredictionOptions(maxLength: 64))
    let acc = ActivationAccumulator(model: model)
    _ = try model.encode(TokenBatch(enc), observer: acc)
    return (model, enc, acc.result(fingerprint: model.fingerprint))
}

/// Head `h` of layer `l` run alone on a layer input `x` [N, D]: its context [N, d] (what the model computes
/// for that head when the whole layer sees `x`).
func headContext(
    model: BertModel, layer l: Int, head h: Int, input x: [Float], batch: TokenBatch,
    pool: ThreadPool = .shared
) -> [Float] {
    let qkv = allocateFloats(batch.tokenCount * 3 * model.headDim)
    defer { qkv.deallocate() }
    var ctx = [Float](repeating: 0, count: batch.tokenCount * model.headDim)
    x.withUnsafeBufferPointer { xp in
        ctx.withUnsafeMutableBufferPointer {
            model.headForward(
                xp.baseAddress!, weights: model.headQKVWeights(layer: l, head: h), batch: batch, qkv: qkv,
                context: $0.baseAddress!, pool: pool)
        }
    }
    return ctx
}

/// Records the layer inputs and pre-mask head contexts of one forward pass.
func recordLayers(
    model: BertModel, batch: TokenBatch, soft: (masks: MaskValues, ablation: Ablation)? = nil,
    pool: ThreadPool = .shared
) throws -> (logits: [Float], inputs: [[Float]], contexts: [[Float]]) {
    let rec = LayerInputs(D: model.hidden)
    let logits = try model.forward(batch, soft: soft, observer: rec, pool: pool)
    return (logits, rec.inputs, rec.contexts)
}
