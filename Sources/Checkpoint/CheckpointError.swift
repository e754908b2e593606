// One error type for everything that reads or writes files. Each case names the file and, where it
// makes sense, the byte offset or line, and its message says what to do about it.
import Failures
import Foundation

public enum CheckpointError: ClassifiedError, Equatable {
    /// The file is missing or unreadable.
    case cannotOpen(path: String, reason: String)
    /// The bytes do not follow the format (truncated, bad length, bad JSON, bad ranges…).
    case malformed(path: String, offset: Int?, reason: String)
    /// The format is valid but uses something hcore does not support.
    case unsupported(path: String, reason: String)
    /// A pickle asked for a global outside the tensor-rebuilding subset. Nothing was executed.
    case forbiddenGlobal(path: String, offset: Int, name: String)
    /// A tensor the model needs is absent, or has the wrong shape.
    case missingTensor(path: String, name: String)
    case shapeMismatch(path: String, name: String, expected: [Int], found: [Int])
    /// The file is fine but lacks what was asked for (a subnetwork name, an activation set).
    case notFound(path: String, reason: String)
    /// A file made for another model or layout (a store, a mask, a subnetwork list).
    case mismatch(path: String, reason: String)
    /// Writing failed (disk full, permissions…).
    case writeFailed(path: String, reason: String)

    public var description: String {
        switch self {
        case .cannotOpen(let path, let reason):
            return "\(path): cannot open: \(reason)"
        case .malformed(let path, let offset, let reason):
            let at = offset.map { " at byte \($0)" } ?? ""
            return "\(path)\(at): malformed: \(reason). The file may be truncated or corrupt; re-export it."
        case .unsupported(let path, let reason):
            return "\(path): unsupported: \(reason)"
        case .forbiddenGlobal(let path, let offset, let name):
            return "\(path) at pickle byte \(offset): refused global '\(name)'. hcore only understands the "
                + "tensor-rebuilding subset of pickle (OrderedDict, torch._utils._rebuild_tensor_v2, typed storages) "
                + "and never executes code; re-save the weights as a plain state dict or as model.safetensors."
        case .missingTensor(let path, let name):
            return
                "\(path): tensor '\(name)' not found. Is this a BERT checkpoint (BertModel or BertForSequenceClassification)?"
        case .shapeMismatch(let path, let name, let expected, let found):
            return "\(path): tensor '\(name)' has shape \(found), config.json implies \(expected)"
        case .writeFailed(let path, let reason):
            return "\(path): write failed: \(reason)"
        case .notFound(let path, let reason):
            return "\(path): \(reason)"
        case .mismatch(let path, let reason):
            return "\(path): \(reason)"
        }
    }
}

extension CheckpointError {
    public var kind: FailureKind {
        switch self {
        case .writeFailed: return .writeFailed
        case .shapeMismatch, .mismatch: return .mismatch
        case .cannotOpen, .malformed, .notFound, .unsupported, .forbiddenGlobal, .missingTensor: return .badInput
        }
    }
}

extension CheckpointError: LocalizedError {
    public var errorDescription: String? { description }
}
