// The run's trace: one JSON object per optimizer step, one per line, with the keys of the reference's
// trajectory golden (GOLDEN-README §6) so that one comparer reads both, and what a user plots: target
// sparsity, learning rates, the gradient norm before clipping, λ1, λ2, every micro-batch's KL and sampled
// sparsity, log α after the step, and the periodic evaluation when one ran. Lines are written as steps end;
// a resumed run first drops the lines of steps its checkpoint does not include, so the trace never repeats.
import Checkpoint
import Foundation

public final class PruneTrace {
    let fd: Int32
    public let path: String

    /// Opens `path` for appending after step `resumeStep` (0: a fresh trace).
    public init(path: String, resumeStep: Int) throws {
        self.path = path
        var kept: [UInt8] = []
        if resumeStep > 0, let old = FileManager.default.contents(atPath: path) {
            for line in old.split(separator: UInt8(ascii: "\n")) {
                guard let o = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any],
                    let s = o["step"] as? Int, s < resumeStep
                else { break }
                kept += line + [UInt8(ascii: "\n")]
            }
        }
        try writeAtomically(kept, to: path)
        fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC)
        guard fd >= 0 else { throw CheckpointError.cannotOpen(path: path, reason: String(cString: strerror(errno))) }
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
