// The reference's own spellings on hcore's command line, so that a line from its scripts pastes into hcore and
// runs once the flags hcore deliberately lacks are replaced — each of those says in one line what to use instead:
// `hcore prune` takes src/pruning/prune-glue.py's (scripts/pruning/prune-all-*.sh), `hcore finetune` takes
// src/ft/run_glue.py's (scripts/ft.sh). `--a_b` is hcore's `--a-b`; a few flags have other names here; Trainer
// flags that only steer PyTorch's machinery are accepted and ignored with a warning.
enum ReferenceFlags {
    /// One command's table: reference flag → hcore flag where the name differs beyond `_` → `-`; flags without
    /// meaning in hcore (and whether each takes a value); flags hcore lacks, with what to use.
    struct Table {
        let renamed: [String: String]
        let ignored: [String: Bool]
        let replaced: [String: String]
    }

    static let trainer: [String: Bool] = [
        "do_train": false, "overwrite_output_dir": false, "remove_unused_columns": true, "dataloader_num_workers": true,
        "dataloader_pin_memory": true, "eval_accumulation_steps": true, "save_total_limit": true,
        "per_device_eval_batch_size": true, "evaluation_strategy": true, "report_to": true, "logging_dir": true,
        "disable_tqdm": true, "logging_steps": true,
    ]
    static let fromFile =
        "hcore reads training pairs from a file: --train FILE (GLUE TSV, HANS, JSONL or CSV; .zst accepted)"
    static let fp32 = "hcore computes in fp32 throughout"

    static let tables: [String: Table] = [
        "prune": Table(
            renamed: [
                "initialize_from": "model", "model_name_or_path": "model", "avg_activation_path": "activations",
                "save_steps": "checkpoint-steps", "train_file": "train",
            ],
            ignored: trainer,
            replaced: [
                "glue_path": fromFile, "task_name": fromFile,
                "output_dir":
                    "subnetworks go into a store: --store FILE.hcs (one subnetwork per seed, with its log α and history)",
                "do_eval": "periodic evaluation is --eval-data FILE with --eval-steps N (and --max-eval-samples N)",
                "fp16": fp32, "bf16": fp32,
            ]),
        "finetune": Table(
            renamed: [
                "model_name_or_path": "model", "train_file": "train", "validation_file": "dev", "output_dir": "out",
                "per_gpu_train_batch_size": "per-device-train-batch-size",
            ],
            // --overwrite_output_dir is hcore's --overwrite-output-dir: without it, a non-empty --out is refused,
            // as the Trainer refuses it.
            ignored: trainer.merging(["do_eval": false]) { a, _ in a }.filter { $0.key != "overwrite_output_dir" },
            replaced: ["task_name": fromFile, "glue_path": fromFile, "fp16": fp32, "bf16": fp32]),
    ]

    /// The arguments with the reference's spellings made hcore's for the commands that take them; warnings for
    /// ignored flags. Other commands' arguments pass unchanged.
    static func translate(_ arguments: [String]) throws -> (arguments: [String], warnings: [String]) {
        guard let command = arguments.first, let table = tables[command] else { return (arguments, []) }
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
            if let takesValue = table.ignored[name] {
                if takesValue && !body.contains("=") && i < arguments.count { i += 1 }
                warnings.append("--\(name) is the reference's PyTorch machinery; hcore ignores it")
                continue
            }
            if let instead = table.replaced[name] {
                throw UsageError("--\(name) (the reference's flag) has no hcore twin: \(instead)")
            }
            out.append(
                "--" + (table.renamed[name] ?? name.replacingOccurrences(of: "_", with: "-"))
                    + body.dropFirst(name.count))
        }
        return (out, warnings)
    }
}
