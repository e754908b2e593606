// What every command shares: exit codes, error reporting, model loading, inputs, progress.
import ArgumentParser
import Checkpoint
import Eval
import Failures
import Foundation
import Model
import Tokenizer

/// Errors raised by the CLI itself (bad flags by default).
struct CLIError: ClassifiedError {
    let message: String
    let kind: FailureKind
    init(_ message: String, code: FailureKind = .usage) {
        self.message = message
        self.kind = code
    }
    var description: String { message }
}

/// stderr, unbuffered.
func warn(_ s: String) {
    FileHandle.standardError.write(Data((s + "\n").utf8))
}

func emit(_ s: String) {
    FileHandle.standardOutput.write(Data((s + "\n").utf8))
}

struct ModelOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Hugging Face model folder: config.json, model.safetensors or pytorch_model.bin, vocab.txt or tokenizer.json.", valueName: "dir"))
    var model: String

    func load() throws -> (BertModel, BertTokenizer) {
        (try BertModel.load(folder: model), try BertTokenizer.load(folder: model))
    }
}

struct TokenizationOptions: ParsableArguments {
    @Option(name: .long, help: "Truncate pairs to this many tokens, [CLS]/[SEP] included (the paper uses 128).")
    var maxLength: Int = 128

    @Option(name: .long, help: ArgumentHelp("longest_first, only_first, only_second or do_not_truncate (as HF's truncation=).", valueName: "strategy"))
    var truncation: String = "longest_first"

    func strategy() throws -> TruncationStrategy {
        guard let t = TruncationStrategy(rawValue: truncation) else {
            throw CLIError("--truncation must be one of \(TruncationStrategy.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard maxLength >= 3 else { throw CLIError("--max-length must be at least 3") }
        return t
    }
}

/// The two input forms of predict/tokenize: positional text (and pair), or --jsonl.
struct TextInputOptions: ParsableArguments {
    @Argument(help: "A text (premise); a second argument is the pair (hypothesis).")
    var texts: [String] = []

    @Option(name: .long, help: ArgumentHelp("Read {\"text\", \"text_pair\"} objects, one per line (.zst accepted).", valueName: "file"))
    var jsonl: String?

    func examples() throws -> [Example] {
        if let jsonl {
            guard texts.isEmpty else { throw CLIError("give texts or --jsonl, not both") }
            return try Dataset.load(jsonl, format: .jsonl).examples
        }
        guard (1...2).contains(texts.count) else { throw CLIError("give one text, a text and its pair, or --jsonl FILE") }
        return [Example(text: texts[0], pair: texts.count == 2 ? texts[1] : nil)]
    }
}

/// A one-line progress bar on a terminal's stderr; silent when stderr is not a terminal.
final class Progress {
    let total: Int
    let label: String
    let start = Date()
    var last = Date.distantPast
    let enabled: Bool

    init(_ label: String, total: Int, force: Bool = false) {
        self.label = label
        self.total = total
        enabled = force || isatty(2) == 1
    }

    func update(_ done: Int) {
        guard enabled else { return }
        let now = Date()
        if done < total && now.timeIntervalSince(last) < 0.1 { return }
        last = now
        let elapsed = now.timeIntervalSince(start)
        let rate = Double(done) / max(elapsed, 1e-9)
        let eta = rate > 0 ? Double(total - done) / rate : 0
        let width = 30
        let filled = total > 0 ? min(width, width * done / total) : width
        let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
        FileHandle.standardError.write(Data(String(format: "\r%@ %@ %d/%d  %.0f/s  ETA %.0fs ", label, bar, done, total, rate, eta).utf8))
        if done >= total { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}

/// `--shard i/n`, or from a Slurm array (SLURM_ARRAY_TASK_ID relative to SLURM_ARRAY_TASK_MIN, of
/// SLURM_ARRAY_TASK_COUNT) when the flag is absent; nil when neither is given.
func parseShard(_ flag: String?) throws -> (Int, Int)? {
    var spec = flag
    let env = ProcessInfo.processInfo.environment
    if spec == nil, let id = env["SLURM_ARRAY_TASK_ID"], let count = env["SLURM_ARRAY_TASK_COUNT"] {
        let min = Int(env["SLURM_ARRAY_TASK_MIN"] ?? "0") ?? 0
        spec = "\((Int(id) ?? 0) - min + 1)/\(count)"
    }
    guard let spec else { return nil }
    let parts = spec.split(separator: "/").compactMap { Int($0) }
    guard parts.count == 2, parts[1] >= 1, (1...parts[1]).contains(parts[0]) else { throw CLIError("--shard must be i/n with 1 ≤ i ≤ n, got \(spec)") }
    return (parts[0], parts[1])
}
