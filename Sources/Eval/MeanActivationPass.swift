// Mean activations for mean ablation: the unpruned model over a dataset, batch by batch (tokenized as
// it goes, so memory stays one batch), every non-padding token averaged in Double — the reference's
// procedure. `hcore activations` and the demo both call this.
import Model
import Tokenizer

/// The mean activations of `model` over `examples`, and how many tokens they average.
public func meanActivations(
    model: BertModel, examples: [Example], tokenizer: BertTokenizer, options: PredictionOptions,
    batchSize: Int, progress: ((Int) -> Void)? = nil
) throws -> (MeanActivations, tokens: Int) {
    let acc = ActivationAccumulator(model: model)
    for start in stride(from: 0, to: examples.count, by: max(1, batchSize)) {
        let chunk = Array(examples[start..<min(examples.count, start + max(1, batchSize))])
        try model.encode(TokenBatch(try encodeAll(chunk, tokenizer: tokenizer, options: options)), observer: acc)
            .deallocate()
        progress?(start + chunk.count)
    }
    return (acc.result(fingerprint: model.fingerprint), acc.tokens)
}

/// The same over encodings already made (the demo tokenizes its training set once for pruning and this).
public func meanActivations(model: BertModel, encodings: [Encoding], batchSize: Int) throws -> (
    MeanActivations, tokens: Int
) {
    let acc = ActivationAccumulator(model: model)
    for start in stride(from: 0, to: encodings.count, by: max(1, batchSize)) {
        try model.encode(
            TokenBatch(Array(encodings[start..<min(encodings.count, start + max(1, batchSize))])), observer: acc
        ).deallocate()
    }
    return (acc.result(fingerprint: model.fingerprint), acc.tokens)
}
