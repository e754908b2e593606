// The subnetwork and ablation a command was asked to run: --mask FILE with --activations FILE (mean
// ablation, the paper's) or --zero-ablation; no mask is the full model. Shared by predict, importance and
// eval, so every command accepts and refuses the same combinations with the same words.
import Checkpoint
import Failures

public struct MaskChoice: Sendable {
    public var mask: String?
    public var activations: String?
    public var zeroAblation: Bool

    public init(mask: String?, activations: String?, zeroAblation: Bool) {
        self.mask = mask
        self.activations = activations
        self.zeroAblation = zeroAblation
    }

    /// The masks and ablation, checked against `model`; nil for the full model. `warn` receives notes
    /// that do not stop the run (an activation file without a fingerprint).
    public func resolve(model: BertModel, warn: (String) -> Void = { _ in }) throws -> (
        masks: MaskValues, ablation: Ablation
    )? {
        guard let mask else {
            if activations != nil || zeroAblation {
                throw UsageError("--activations and --zero-ablation go with --mask")
            }
            return nil
        }
        let masks = try MaskValues.load(path: mask)
        let ablation: Ablation
        if zeroAblation {
            if activations != nil { throw UsageError("--zero-ablation and --activations exclude each other") }
            ablation = .zero
        } else {
            guard let activations else {
                throw UsageError("--mask needs --activations FILE (mean ablation, as the paper) or --zero-ablation")
            }
            ablation = .mean(try MeanActivations.load(path: activations, model: model, warn: warn))
        }
        do { try model.checkMasks(masks, ablation) } catch { throw ModelError.mismatch("\(mask): \(error)") }
        return (masks, ablation)
    }

    /// Binary masks run through a compiled plan (pruned units skipped); fractional ones through the general path.
    public func compile(model: BertModel, warn: (String) -> Void = { _ in }) throws -> (
        plan: ExecutionPlan?, soft: (masks: MaskValues, ablation: Ablation)?
    ) {
        guard let (masks, ablation) = try resolve(model: model, warn: warn) else { return (nil, nil) }
        if masks.isBinary { return (try ExecutionPlan.compile(model: model, masks: masks, ablation: ablation), nil) }
        return (nil, (masks, ablation))
    }
}
