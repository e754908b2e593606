// What every command shares: output streams, the flag groups several commands take, progress, shards.
import ArgumentParser
import Checkpoint
import Eval
import Failures
import Foundation
import Model
import Store
import Tokenizer

/// stderr, unbuffered. A failing stderr is ignored: there is nowhere left to report it.
func warn(_ s: String) {
    try? writeAll(2, Array((s + "\n").utf8), shownAs: "standard error")
}

/// A line to stdout.
func emit(_ s: String) {
    emit(bytes: Array((s + "\n").utf8))
}

/// Bytes to stdout. If stdout cannot take them (a full disk, /dev/full, a closed pipe) the command ends
/// with exit code 5 naming it: output that was asked for and not written is a failure, never a crash.
func emit(bytes: [UInt8]) {
    do { try writeAll(1, bytes, shownAs: "standard output") } catch {
        warn("hcore: error: \(error)")
        exit(FailureKind.writeFailed.rawValue)
    }
}

struct ModelOptions: ParsableArguments {
    @Option(
        name: .long,
        help: ArgumentHelp(
            "Hugging Face model folder: config.json, model.safetensors or pytorch_model.bin, vocab.txt or tokenizer.json.",
            valueName: "dir")) var model: String

    func load() throws -> (BertModel, BertTokenizer) {
        (try BertModel.load(folder: model), try BertTokenizer.load(folder: model))
    }
}

struct TokenizationOptions: ParsableArguments {
    @Option(
        name: .long,
        help:
            "Truncate pairs to this many tokens, [CLS]/[SEP] included. Pruning and fine-tuning in the paper use 128; the reference's eval scripts truncate only at the model's 512, so pass 512 to match them exactly (128 is faster, changes only pairs longer than 128 tokens, and is recorded as max_length in the document)."
    ) var maxLength: Int = 128
    @Option(
        name: .long,
        help: ArgumentHelp(
            "longest_first, only_first, only_second or do_not_truncate (as HF's truncation=).", valueName: "strategy"))
    var truncation: String = "longest_first"

    func options(batchSize: Int = 32) throws -> PredictionOptions {
        try PredictionOptions(maxLength: maxLength, batchSize: batchSize, truncation: truncation)
    }
}

/// The two input forms of predict/tokenize: positional text (and pair), or --jsonl.
struct TextInputOptions: ParsableArguments {
    @Argument(help: "A text (premise); a second argument is the pair (hypothesis).") var texts: [String] = []
    @Option(
        name: .long,
        help: ArgumentHelp("Read {\"text\", \"text_pair\"} objects, one per line (.zst accepted).", valueName: "file"))
    var jsonl: String?

    func examples() throws -> [Example] {
        if let jsonl {
            guard texts.isEmpty else { throw UsageError("give texts or --jsonl, not both") }
            return try Dataset.load(jsonl, format: .jsonl).examples
        }
        guard (1...2).contains(texts.count) else {
            throw UsageError("give one text, a text and its pair, or --jsonl FILE")
        }
        return [Example(text: texts[0], pair: texts.count == 2 ? texts[1] : nil)]
    }
}

/// --mask / --activations / --zero-ablation, shared by predict, importance and eval.
struct MaskOptions: ParsableArguments {
    @Option(
        name: .long,
        help: ArgumentHelp(
            "Subnetwork mask: JSON {\"heads\": [[L rows of H values]], \"mlps\": [L values]}, values in [0, 1].",
            valueName: "file")) var mask: String?
    @Option(
        name: .long,
        help: ArgumentHelp(
            "Mean activations (safetensors from `hcore activations`) for mean ablation.", valueName: "file"))
    var activations: String?
    @Flag(name: .long, help: "Replace pruned units by zero instead of their mean activation.") var zeroAblation = false

    var choice: MaskChoice { MaskChoice(mask: mask, activations: activations, zeroAblation: zeroAblation) }
}

/// Filters shared by store ls/export, eval and circuits core.
struct StoreFilter: ParsableArguments {
    @Option(help: "Only subnetworks whose meta.tags contains this tag.") var tag: String?
    @Option(
        name: .customLong("where"),
        help: ArgumentHelp("Metadata condition KEY=VALUE, KEY>=NUMBER or KEY<=NUMBER (repeatable).", valueName: "cond"))
    var conditions: [String] = []
    @Option(help: "Only subnetworks with at least this achieved sparsity (fraction of units pruned).") var minSparsity:
        Double?
    @Option(help: "Only subnetworks with at most this achieved sparsity.") var maxSparsity: Double?

    func filter(names: [String]? = nil) throws -> SubnetworkFilter {
        try SubnetworkFilter(
            tag: tag, conditions: conditions, minSparsity: minSparsity, maxSparsity: maxSparsity, names: names)
    }
}

/// `--shard i/n`, or the Slurm array this process belongs to (the one place the CLI reads the environment).
func shardSpec(_ flag: String?) throws -> ShardSpec? {
    try ShardSpec.parse(flag, environment: ProcessInfo.processInfo.environment)
}
