// The reference's own spellings on hcore's command line, so that a line from its scripts
// (scripts/pruning/prune-all-*.sh → src/pruning/prune-glue.py) pastes into `hcore prune` and runs once the
// flags hcore deliberately lacks are replaced — and each of those says in one line what to use instead.
// `--a_b` is hcore's `--a-b`; a few flags have other names here; Trainer flags that only steer PyTorch's
// machinery are accepted and ignored with a warning.
import Failures

public enum ReferenceFlags {
    /// Reference flag → hcore flag, where the name differs beyond `_` → `-`.
    static let renamed: [String: String] = [
        "initialize_from": "model", "model_name_or_path": "model", "avg_activation_path": "activations",
        "save_steps": "checkpoint-steps", "train_file": "train",
    ]
    /// Flags without meaning in hcore, and whether each takes a value.
    static let ignored: [String: Bool] = [
        "do_train": false, "overwrite_output_dir": false, "remove_unused_columns": true, "dataloader_num_workers": true,
        "dataloader_pin_memory": true, "eval_accumulation_steps": true, "save_total_limit": true,
        "per_device_eval_batch_size": true,
        "evaluation_strategy": true, "report_to": true, "logging_dir": true, "disable_tqdm": true,
    ]
    /// Flags hcore deliberately lacks, with what to use.
    static let replaced: [String: String] = [
        "glue_path":
            "hcore reads training pairs from a file: --train FILE (GLUE TSV, HANS, JSONL or CSV; .zst accepted)",
        "task_name":
            "hcore reads training pairs from a file: --train FILE (GLUE TSV, HANS, JSONL or CSV; .zst accepted)",
        "output_dir":
            "subnetworks go into a store: --store FILE.hcs (one subnetwork per seed, with its log α and history)",
        "do_eval": "periodic evaluation is --eval-data FILE with --eval-steps N (and --max-eval-samples N)",
        "fp16": "hcore computes in fp32 throughout",
        "bf16": "hcore computes in fp32 throughout",
    ]

    /// The arguments of `hcore prune` with the reference's spellings made hcore's; warnings for ignored flags.
    /// Other subcommands' arguments pass unchanged.
    public static func translate(_ arguments: [String]) throws -> (arguments: [String], warnings: [String]) {
        guard arguments.first == "prune" else { return (arguments, []) }
        var out: [String] = []
        var warnings: [String] = []
        var i = 0
        while i < arguments.count {
            let a = arguments[i]
            i += 1
            guard a.hasPrefix("--"), a.contains("_") else {
                out.append(a)
                continue
            }
            let body = a.dropFirst(2)
            let name = String(body.prefix { $0 != "=" })
            let inlineValue = body.contains("=")
            if let takesValue = ignored[name] {
                if takesValue && !inlineValue && i < arguments.count { i += 1 }
                warnings.append("--\(name) is the reference's PyTorch machinery; hcore ignores it")
                continue
            }
            if let instead = replaced[name] {
                throw UsageError("--\(name) (the reference's flag) has no hcore twin: \(instead)")
            }
            let hcoreName = renamed[name] ?? name.replacingOccurrences(of: "_", with: "-")
            out.append("--" + hcoreName + body.dropFirst(name.count))
        }
        return (out, warnings)
    }
}
