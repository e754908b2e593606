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
