// What can go wrong in Model: a folder that is not a model, a checkpoint without a classifier, an input the
// model cannot take, and masks, activations or plans made for another model. Each says its FailureKind, which
// the CLI turns into an exit code.
import Failures

public enum ModelError: ClassifiedError {
    case notAModelFolder(path: String, reason: String)
    case noClassifier(path: String)
    case badInput(String)
    /// Masks, activations or a plan made for another model (or of the wrong shape).
    case mismatch(String)

    public var kind: FailureKind {
        if case .mismatch = self { return .mismatch }
        return .badInput
    }

    public var description: String {
        switch self {
        case .notAModelFolder(let path, let reason): return "\(path): \(reason)"
        case .noClassifier(let path):
            return
                "\(path): the checkpoint has no classifier (classifier.weight/bias); it is a bare BertModel — use a BertForSequenceClassification checkpoint"
        case .badInput(let s), .mismatch(let s): return s
        }
    }
}
