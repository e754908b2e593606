// The run's trace: one JSON object per optimizer step, one per line, with the keys of the reference's
// trajectory golden (GOLDEN-README §6) so that one comparer reads both, and what a user plots: target
// sparsity, learning rates, the gradient norm before clipping, λ1, λ2, every micro-batch's KL and sampled
// sparsity, log α after the step, and the periodic evaluation when one ran. Lines are written as steps end;
// a resumed run first drops the lines of steps its checkpoint does not include, so the trace never repeats.
import Checkpoint
import Failures
import Foundation

public final class PruneTrace {
    let fd: Int32
    public let path: String

    /// Opens `path` for appending after step `resumeStep` (0: a fresh trace). A resumed trace must hold steps
    /// 0 … resumeStep − 1, each on its own intact line (`sync` runs before every checkpoint); a line after them
    /// (a step the checkpoint does not include, perhaps cut by a kill) is dropped. A trace that lacks one of its
    /// steps is refused, naming its line: it is never silently cut.
    public init(path: String, resumeStep: Int) throws {
        self.path = path
        let old = resumeStep > 0 ? try InputFiles.readIfPresent(path) : nil
        let kept = try old.map { try Self.kept($0, resumeStep: resumeStep, path: path) } ?? []
        try writeAtomically(kept, to: path, replacingInput: true)
        fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC)
        guard fd >= 0 else { throw CheckpointError.cannotOpen(path: path, reason: String(cString: strerror(errno))) }
    }

    /// The lines of steps 0 … resumeStep − 1 of a trace's bytes, each checked (the fuzzers enter here).
    public static func kept(_ old: [UInt8], resumeStep: Int, path: String) throws -> [UInt8] {
        let lines = old.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        var kept: [UInt8] = []
        for step in 0..<max(0, resumeStep) {
            guard step < lines.count, step + 1 < lines.count || old.last == UInt8(ascii: "\n"),
                let o = try? JSONValue.parse(String(decoding: lines[step], as: UTF8.self), path: path),
                o.get("step")?.intValue == step
            else {
                throw CheckpointError.malformed(
                    path: path, offset: nil,
                    reason:
                        "line \(step + 1) is not step \(step)'s record, which the run's checkpoint includes; move the trace away to resume without it"
                )
            }
            kept += lines[step] + [UInt8(ascii: "\n")]
        }
        return kept
    }

    /// Makes every line written so far durable.
    public func sync() throws {
        guard fsync(fd) == 0 else {
            throw CheckpointError.writeFailed(path: path, reason: "fsync: \(String(cString: strerror(errno)))")
        }
    }

    deinit { close(fd) }

    public func append(_ st: PruneStep) throws {
        var fields: [(String, JSONValue)] = [
            ("step", .int(st.step)), ("target_sparsity", .float(st.target)), ("lr", .float(st.learningRate ?? .nan)),
            // NaN is written as null
            ("reg_lr", .float(st.regLearningRate ?? .nan)), ("grad_norm_before_clip", .float(st.gradNorm ?? .nan)),
            ("lambda1", .float(st.lambda1)), ("lambda2", .float(st.lambda2)), ("kl", .float(st.kl)),
            ("lagrangian", .float(st.lagrangian)),
            ("expected_sparsity", .float(st.expectedSparsity)),
            (
                "micro_batches",
                .array(
                    zip(st.microKL ?? [], st.microSparsity ?? []).enumerated().map { j, m in
                        .object([("micro_batch", .int(j)), ("kl", .float(m.0)), ("sparsity", .float(m.1))])
                    })
            ),
            ("log_alpha", .array((st.logAlpha ?? []).map { .float($0) })),
        ]
        if let e = st.evaluation {
            fields.append(
                (
                    "eval",
                    .object([
                        ("kl", .float(e.kl)), ("accuracy", e.accuracy.map { .float($0) } ?? .null),
                        ("sparsity", .float(e.sparsity)),
                    ])
                ))
        }
        try writeAll(fd, Array(JSONValue.object(fields).compact.utf8) + [UInt8(ascii: "\n")], shownAs: path)
    }
}
