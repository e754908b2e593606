// What one `hcore eval` evaluates: the full model, one mask file, or a store's subnetworks (filtered,
// binary or soft, one shard of them), and the ablation that replaces pruned units.
import Checkpoint
import Failures
import Model

public enum MaskMode: String, Sendable, CaseIterable {
    /// Masks as stored.
    case binary
    /// The reference's deterministic soft values from the stored log-alphas.
    case soft
}

extension EvalTarget {
    /// The unpruned model, listed first as the reference does ("original").
    public static let full = EvalTarget(name: "full", index: 0, sparsity: 0, seed: .string("original"), masks: nil)

    /// A stored subnetwork; `.soft` needs its log-alphas (`threshold` then makes the soft values binary).
    public init(_ sub: StoredSubnetwork, index: Int, layout: StoreLayout, mode: MaskMode, threshold: Float?) throws {
        if let threshold, !(threshold.isFinite && (0...1).contains(threshold)) { throw UsageError("--threshold must be a number in [0, 1], got \(threshold)") }
        var masks = MaskValues(units: sub.mask.map(Float.init), layers: layout.layers, heads: layout.heads)
        if mode == .soft {
            guard let la = sub.logAlpha else {
                throw ModelError.badInput("'\(sub.name)' has no log-alphas; --mask-mode soft needs them (use --mask-mode binary)")
            }
            masks = MaskValues.fromLogAlpha(la, layers: layout.layers, heads: layout.heads, threshold: threshold)
        }
        self.init(name: sub.name, index: index, sparsity: sub.sparsity, seed: sub.meta.get("seed") ?? .null, masks: masks)
    }
}

public struct EvalSelection {
    public var targets: [EvalTarget]
    public var ablation: Ablation
    /// Targets before sharding (the document's subnetworks_total).
    public var total: Int
    public var store: SubnetworkStore?

    /// none (only the full model), zero or mean.
    public var ablationName: String {
        if targets.allSatisfy({ $0.masks == nil }) { return "none" }
        if case .zero = ablation { return "zero" }
        return "mean"
    }

    /// A store's subnetworks chosen by `filter` (with the full model first when `includeFull`), ablated with
    /// `mask.activations`, zero with `mask.zeroAblation`, else the store's activation set `activationSet`
    /// (default: its only one).
    public static func fromStore(_ path: String, model: BertModel, filter: SubnetworkFilter, includeFull: Bool, mode: MaskMode,
                                 threshold: Float?, mask: MaskChoice, activationSet: String?, warn: (String) -> Void) throws -> EvalSelection {
        guard mask.mask == nil else { throw UsageError("give --store or --mask, not both") }
        let store = try SubnetworkStore.open(path: path)
        if let note = store.recoveryNote { warn("warning: \(path): \(note)") }
        try store.check(against: model)
        var targets = includeFull ? [EvalTarget.full] : []
        for sub in try filter.apply(store) {
            targets.append(try EvalTarget(sub, index: targets.count, layout: store.layout, mode: mode, threshold: threshold))
        }
        let ablation: Ablation = mask.zeroAblation ? .zero
            : .mean(try store.meanActivations(file: mask.activations, set: activationSet, model: model, required: true, warn: warn)!)
        return EvalSelection(targets: targets, ablation: ablation, total: targets.count, store: store)
    }

    /// One mask file (or the full model when `mask.mask` is nil).
    public static func fromMask(_ mask: MaskChoice, model: BertModel, warn: (String) -> Void) throws -> EvalSelection {
        guard let (masks, ablation) = try mask.resolve(model: model, warn: warn), let path = mask.mask else {
            return EvalSelection(targets: [.full], ablation: .zero, total: 1, store: nil)
        }
        return EvalSelection(targets: [EvalTarget(name: path, index: 0, sparsity: masks.sparsity, seed: .null, masks: masks)],
                             ablation: ablation, total: 1, store: nil)
    }

    /// Keeps shard `i` of `n` (1-based): every n-th target, by index.
    public mutating func keepShard(_ i: Int, of n: Int) {
        targets = targets.filter { $0.index % n == i - 1 }
    }
}
