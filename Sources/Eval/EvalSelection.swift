// What one `hcore eval` evaluates: the full model, one mask file, or a store's subnetworks (filtered,
// binary or soft, one shard of them), and the ablation that replaces pruned units.
import Checkpoint
import Failures
import Foundation
import Model
import Store

public enum MaskMode: String, Sendable, CaseIterable {
    /// Masks as stored.
    case binary
    /// The reference's deterministic soft values from the stored log-alphas.
    case soft
}

/// The reference's --force-include / --force-exclude (scripts/eval/*.py): units whose log α is set to +10 / −10
/// before the deterministic rule, so that the rule's count of zeros — and with it which other units it zeroes —
/// changes exactly as there. On masks without log α the unit is simply set on / off.
public struct UnitForcing: Sendable {
    public var include: [PrunableUnit] = []
    public var exclude: [PrunableUnit] = []
    public var isEmpty: Bool { include.isEmpty && exclude.isEmpty }

    public init() {}

    /// From unit names (`a4.h3`, `a2.mlp`), checked against a model of `layers` × `heads`.
    public init(include: [String], exclude: [String], layers: Int, heads: Int) throws {
        func parse(_ names: [String], _ flag: String) throws -> [PrunableUnit] {
            try names.map { n in
                guard let u = PrunableUnit(n), u.layer < layers, (u.head ?? 0) < heads else {
                    throw UsageError(
                        "\(flag) '\(n)' is not a unit of this model (a0.h0 … a\(layers - 1).h\(heads - 1), a0.mlp … a\(layers - 1).mlp)"
                    )
                }
                return u
            }
        }
        self.include = try parse(include, "--force-include")
        self.exclude = try parse(exclude, "--force-exclude")
        if let both = Set(self.include).intersection(self.exclude).first {
            throw UsageError("\(both) is both forced in and forced out")
        }
    }

    /// log α with the forced units at ±10.
    public func apply(logAlpha: [Float], layers: Int, heads: Int) -> [Float] {
        var la = logAlpha
        for u in include { la[u.index(layers: layers, heads: heads)] = 10 }
        for u in exclude { la[u.index(layers: layers, heads: heads)] = -10 }
        return la
    }

    /// Masks with the forced units set to 1 / 0.
    public func apply(masks: MaskValues) -> MaskValues {
        var m = masks
        for u in include { if let h = u.head { m.heads[u.layer][h] = 1 } else { m.mlps[u.layer] = 1 } }
        for u in exclude { if let h = u.head { m.heads[u.layer][h] = 0 } else { m.mlps[u.layer] = 0 } }
        return m
    }
}

extension EvalTarget {
    /// The unpruned model, listed first as the reference does ("original").
    public static let full = EvalTarget(name: "full", index: 0, sparsity: 0, seed: .string("original"), masks: nil)

    /// A stored subnetwork; `.soft` needs its log-alphas (`threshold` then makes the soft values binary).
    /// `forcing`: with log-alphas, the masks are derived again from the forced log α (binary mode at the
    /// threshold the subnetwork was stored with, default 0.5); without, the forced units are set.
    public init(
        _ sub: StoredSubnetwork, index: Int, layout: StoreLayout, mode: MaskMode, threshold: Float?,
        forcing: UnitForcing = UnitForcing()
    ) throws {
        if let threshold, !(threshold.isFinite && (0...1).contains(threshold)) {
            throw UsageError("--threshold must be a number in [0, 1], got \(threshold)")
        }
        let L = layout.layers
        let H = layout.heads
        var masks = MaskValues(units: sub.mask.map(Float.init), layers: L, heads: H)
        if mode == .soft {
            guard let la = sub.logAlpha else {
                throw ModelError.badInput(
                    "'\(sub.name)' has no log-alphas; --mask-mode soft needs them (use --mask-mode binary)")
            }
            masks = MaskValues.fromLogAlpha(
                forcing.apply(logAlpha: la, layers: L, heads: H), layers: L, heads: H, threshold: threshold)
        } else if !forcing.isEmpty {
            if let la = sub.logAlpha {
                let stored: Float =
                    sub.meta.get("threshold").flatMap { if case .float(let t) = $0 { Float(t) } else { nil } } ?? 0.5
                masks = MaskValues.fromLogAlpha(
                    forcing.apply(logAlpha: la, layers: L, heads: H), layers: L, heads: H, threshold: stored)
            } else {
                masks = forcing.apply(masks: masks)
            }
        }
        // else the stored achieved sparsity holds
        let changed = !forcing.isEmpty || (mode == .soft && threshold != nil)
        self.init(
            name: sub.name, index: index, sparsity: changed ? masks.sparsity : sub.sparsity,
            seed: sub.meta.get("seed") ?? .null, masks: masks)
        self.threshold = mode == .soft ? threshold : nil
        (step, targetSparsity) = (sub.meta.get("step")?.intValue, sub.meta.get("target_sparsity")?.doubleValue)
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
    /// `thresholds` (the reference's --step-size sweep) evaluates every subnetwork once per threshold, soft
    /// values made binary at each, named "NAME@t=THRESHOLD".
    public static func fromStore(
        _ path: String, model: BertModel, filter: SubnetworkFilter, includeFull: Bool, mode: MaskMode,
        threshold: Float?, mask: MaskChoice, activationSet: String?, forcing: UnitForcing = UnitForcing(),
        thresholds: [Float]? = nil, warn: (String) -> Void
    ) throws -> EvalSelection {
        guard mask.mask == nil else { throw UsageError("give --store or --mask, not both") }
        let store = try SubnetworkStore.open(path: path, warn: warn)
        try store.check(against: model)
        var targets = includeFull ? [EvalTarget.full] : []
        for sub in try filter.apply(store) {
            guard let thresholds else {
                targets.append(
                    try EvalTarget(
                        sub, index: targets.count, layout: store.layout, mode: mode, threshold: threshold,
                        forcing: forcing))
                continue
            }
            for t in thresholds {
                var target = try EvalTarget(
                    sub, index: targets.count, layout: store.layout, mode: .soft, threshold: t, forcing: forcing)
                target.name += String(format: "@t=%g", t)
                targets.append(target)
            }
        }
        let ablation: Ablation =
            mask.zeroAblation
            ? .zero
            : .mean(
                try store.meanActivations(
                    file: mask.activations, set: activationSet, model: model, required: true, warn: warn)!)
        return EvalSelection(targets: targets, ablation: ablation, total: targets.count, store: store)
    }

    /// One mask file (or the full model when `mask.mask` is nil), forced units set on / off.
    public static func fromMask(
        _ mask: MaskChoice, model: BertModel, forcing: UnitForcing = UnitForcing(), warn: (String) -> Void
    ) throws -> EvalSelection {
        guard let (resolved, ablation) = try mask.resolve(model: model, warn: warn), let path = mask.mask else {
            guard forcing.isEmpty else {
                throw UsageError("--force-include/--force-exclude act on a subnetwork: give --mask or --store")
            }
            return EvalSelection(targets: [.full], ablation: .zero, total: 1, store: nil)
        }
        let masks = forcing.apply(masks: resolved)
        return EvalSelection(
            targets: [EvalTarget(name: path, index: 0, sparsity: masks.sparsity, seed: .null, masks: masks)],
            ablation: ablation, total: 1, store: nil)
    }

    /// The full model as the first target (the heuristic-core format's row 0), added when missing.
    public mutating func includeFullModel() {
        if targets.first?.masks != nil || targets.isEmpty {
            targets.insert(.full, at: 0)
            total += 1
        }
    }

    /// Keeps shard `i` of `n` (1-based): every n-th target, by index.
    public mutating func keepShard(_ i: Int, of n: Int) {
        targets = targets.filter { $0.index % n == i - 1 }
    }
}

/// The reference's --step-size sweep: thresholds 0, S, 2S, … < 1 (numpy.arange(0, 1, S)); it needs log-alphas.
public func thresholdSweep(stepSize s: Double, store: String?) throws -> [Float] {
    guard s.isFinite, s > 0, s < 1 else { throw UsageError("--step-size must lie in (0, 1), got \(s)") }
    guard store != nil else { throw UsageError("--step-size sweeps the thresholds of stored log-alphas: give --store") }
    return (0..<Int((1 / s).rounded(.up))).map { Float(Double($0) * s) }.filter { $0 < 1 }
}

extension EvalSelection {
    /// One model to take apart (unit ablation): a stored subnetwork (`store` + `subnetwork`), a mask file, or
    /// the full model; with the ablation that replaces removed units (mean activations from `mask.activations`
    /// or the store's set; zero with `mask.zeroAblation`).
    public static func single(
        store: String?, subnetwork: String?, mask: MaskChoice, activationSet: String?, model: BertModel,
        warn: (String) -> Void
    ) throws -> (name: String, masks: MaskValues?, ablation: Ablation) {
        if let store {
            guard let subnetwork else { throw UsageError("with --store, name the subnetwork: --subnetwork NAME") }
            let s = try fromStore(
                store, model: model, filter: SubnetworkFilter(names: [subnetwork]), includeFull: false, mode: .binary,
                threshold: nil, mask: mask, activationSet: activationSet, warn: warn)
            return (subnetwork, s.targets[0].masks, s.ablation)
        }
        if let path = mask.mask {
            let s = try fromMask(mask, model: model, warn: warn)
            return (path, s.targets[0].masks, s.ablation)
        }
        if mask.zeroAblation { return ("full", nil, .zero) }
        guard let file = mask.activations else {
            throw UsageError("removing units needs --activations FILE (mean ablation) or --zero-ablation")
        }
        return ("full", nil, .mean(try MeanActivations.load(path: file, model: model, warn: warn)))
    }
}
