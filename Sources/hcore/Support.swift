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
            "Truncate pairs to this many tokens, [CLS]/[SEP] included (default: 128, or the model's positions if fewer; a value above them truncates at them, as transformers does at a model's maximum). Pruning and fine-tuning in the paper use 128; the reference's eval scripts truncate only at the model's 512, so pass 512 to match them exactly (128 is faster, changes only pairs longer than 128 tokens, and is recorded as max_length in the document)."
    ) var maxLength: Int?
    @Option(
        name: .long,
        help: ArgumentHelp(
            "longest_first, only_first, only_second or do_not_truncate (as HF's truncation=).", valueName: "strategy"))
    var truncation: String = "longest_first"

    /// The options for a model of `positions` positions: --max-length (default 128) capped at them, said when a
    /// given length is.
    func options(batchSize: Int = 32, positions: Int) throws -> PredictionOptions {
        if let maxLength, maxLength > positions {
            warn(
                "hcore: --max-length \(maxLength) exceeds the model's \(positions) positions: pairs are truncated to \(positions)"
            )
        }
        return try phrasingSettings {
            try PredictionOptions(
                maxLength: min(maxLength ?? 128, positions), batchSize: batchSize, truncation: truncation)
        }
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

    /// The ablation these flags choose; nil when neither --activations nor --zero-ablation is given.
    func ablation() throws -> AblationSource? {
        guard zeroAblation else { return activations.map { .file($0) } }
        guard activations == nil else { throw UsageError("--zero-ablation and --activations exclude each other") }
        return .zero
    }

    /// The mask file's masks with their ablation, checked against `model`; nil without --mask (the full model).
    func resolve(model: BertModel) throws -> (masks: MaskValues, ablation: Ablation)? {
        guard let mask else {
            if activations != nil || zeroAblation {
                throw UsageError("--activations and --zero-ablation go with --mask")
            }
            return nil
        }
        guard let source = try ablation() else {
            throw UsageError("--mask needs --activations FILE (mean ablation, as the paper) or --zero-ablation")
        }
        let selection = try EvalSelection.fromMask(mask, model: model, ablation: source, warn: warn)
        return (selection.targets[0].masks!, selection.ablation)
    }

    /// The mask file compiled (`compiled`); (nil, nil) without --mask.
    func compile(model: BertModel) throws -> (plan: ExecutionPlan?, soft: (masks: MaskValues, ablation: Ablation)?) {
        guard let chosen = try resolve(model: model) else { return (nil, nil) }
        return try compiled(chosen, model: model)
    }
}

/// Binary masks run through a compiled plan (pruned units skipped); fractional ones through the general path.
func compiled(_ chosen: (masks: MaskValues, ablation: Ablation), model: BertModel) throws -> (
    plan: ExecutionPlan?, soft: (masks: MaskValues, ablation: Ablation)?
) {
    if chosen.masks.isBinary {
        return (try ExecutionPlan.compile(model: model, masks: chosen.masks, ablation: chosen.ablation), nil)
    }
    return (nil, chosen)
}

/// --full / --threshold: how a pruned run of the reference given as --model (a folder whose weights carry
/// log_alpha tensors) is run.
struct RunOptions: ParsableArguments {
    @Flag(
        help:
            "With a pruned run of the reference as --model (its weights carry log_alpha tensors): run its unpruned weights instead of its subnetwork."
    ) var full = false
    @Option(
        help:
            "With a pruned run as --model: make its deterministic masks binary at this threshold instead of soft (the reference's -t)."
    ) var threshold: Float?

    /// The subnetwork of the pruned run at `folder`, by the reference's rule, with the ablation `mask` chooses;
    /// nil when `folder` is not a pruned run or --full is given. Said on stderr.
    func subnetwork(folder: String, model: BertModel, mask: MaskOptions) throws -> (
        masks: MaskValues, ablation: Ablation
    )? {
        guard mask.mask == nil, !full, let run = try referenceRunSubnetwork(folder: folder, layout: StoreLayout(model))
        else {
            if threshold != nil { throw UsageError("--threshold applies to a pruned run given as --model") }
            return nil
        }
        guard let ablation = try mask.ablation() else {
            throw UsageError(
                "\(run.name) is a pruned run of the reference (its weights carry log_alpha tensors): its subnetwork runs with mean ablation — give --activations FILE (the reference's default: data/activations/mnli.pkl) or --zero-ablation; --full runs its unpruned weights"
            )
        }
        let selection = try EvalSelection.fromRun(
            run, model: model, includeFull: false, mode: .soft, threshold: threshold, ablation: ablation, warn: warn)
        let target = selection.targets[0]
        warn(
            "hcore: \(run.name) carries log α: running its subnetwork, masks \(target.maskRule!); --full runs its unpruned weights"
        )
        return (target.masks!, selection.ablation)
    }
}

/// One model to take apart or export: a stored subnetwork (`store` with its `name`, given by `nameFlag`), a mask
/// file, or the full model; with the ablation that replaces removed units (--activations, the store's set, zero).
func singleModel(
    store: String?, name: String?, nameFlag: String, mask: MaskOptions, activationSet: String?, model: BertModel
) throws -> (name: String, masks: MaskValues?, ablation: Ablation) {
    if let store {
        guard mask.mask == nil else { throw UsageError("give --store or --mask, not both") }
        guard let name else { throw UsageError("with --store, name the subnetwork: \(nameFlag) NAME") }
        let s = try EvalSelection.fromStore(
            store, model: model, filter: SubnetworkFilter(names: [name]), includeFull: false, mode: .binary,
            threshold: nil, ablation: try mask.ablation() ?? .storeSet(activationSet), warn: warn)
        return (name, s.targets[0].masks, s.ablation)
    }
    if let path = mask.mask, let (masks, ablation) = try mask.resolve(model: model) { return (path, masks, ablation) }
    guard let source = try mask.ablation() else {
        throw UsageError("removing units needs --activations FILE (mean ablation) or --zero-ablation")
    }
    return ("full", nil, try EvalSelection.resolve(source, store: nil, model: model, warn: warn))
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

    /// Which of these flags were given, for commands to refuse them where they cannot apply.
    var given: [(String, Bool)] {
        [
            ("--tag", tag != nil), ("--where", !conditions.isEmpty), ("--min-sparsity", minSparsity != nil),
            ("--max-sparsity", maxSparsity != nil),
        ]
    }

    func filter(names: [String]? = nil) throws -> SubnetworkFilter {
        try SubnetworkFilter(
            tag: tag, conditions: conditions, minSparsity: minSparsity, maxSparsity: maxSparsity, names: names)
    }
}

/// `--shard i/n`, or the Slurm array this process belongs to (the one place the CLI reads the environment).
func shardSpec(_ flag: String?) throws -> ShardSpec? {
    try ShardSpec.parse(flag, environment: ProcessInfo.processInfo.environment)
}

/// Refuses the first given flag of `flags` (name, given) with the reason it cannot apply.
func refuse(_ flags: [(String, Bool)], because reason: String) throws {
    if let (flag, _) = flags.first(where: { $0.1 }) { throw UsageError("\(flag) cannot apply here: \(reason)") }
}

/// `body`, with a library's refusal to write into a folder that holds another model's files phrased with this
/// command's flag for replacing them.
func withReplaceFlag<T>(_ flag: String, _ body: () throws -> T) throws -> T {
    do { return try body() } catch let error as SettingError where error.setting == "replacing" {
        throw UsageError("\(flag) is needed \(error.problem)")
    }
}
