// What one `hcore eval` evaluates: the full model, one mask file, or a store's subnetworks (filtered,
// binary or soft, one shard of them), and the ablation that replaces pruned units.
import Checkpoint
import Failures
import Foundation
import Model
import Store

/// How a subnetwork's masks are made for evaluation.
public enum MaskMode: String, Sendable, CaseIterable {
    /// Masks as stored (binary).
    case binary
    /// The reference's rule for a subnetwork that carries log α (its evaluation scripts' default): the
    /// deterministic soft values (`deterministic_z_from_log_alpha`), or binary at a threshold when one is given.
    /// A subnetwork without log α is evaluated as stored.
    case soft
}

/// What replaces pruned units: zero, or mean activations from a file or from a store's activation set.
public enum AblationSource: Sendable, Equatable {
    case zero
    /// A safetensors file of `hcore activations` or the reference's pickle.
    case file(String)
    /// The store's set of this name; nil: its only one.
    case storeSet(String?)
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
        func parse(_ names: [String], _ setting: String) throws -> [PrunableUnit] {
            try names.map { n in
                guard let u = PrunableUnit(n), u.layer < layers, (u.head ?? 0) < heads else {
                    throw SettingError(
                        setting,
                        "'\(n)' is not a unit of this model (a0.h0 … a\(layers - 1).h\(heads - 1), a0.mlp … a\(layers - 1).mlp)"
                    )
                }
                return u
            }
        }
        self.include = try parse(include, "forceInclude")
        self.exclude = try parse(exclude, "forceExclude")
        if let both = Set(self.include).intersection(self.exclude).first {
            throw SettingError("forceExclude", "names \(both), which is also forced in")
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

    /// A stored subnetwork under `mode`: with log α, `.soft` applies the reference's deterministic rule (soft
    /// values, or binary at `threshold`); otherwise, and in `.binary`, the masks as stored. `forcing` sets log α
    /// of forced units to ±10 before the rule (binary mode: at the threshold the subnetwork was stored with,
    /// default 0.5); without log α the forced units are set. The rule is recorded (`maskRule`).
    public init(
        _ sub: StoredSubnetwork, index: Int, layout: StoreLayout, mode: MaskMode, threshold: Float?,
        forcing: UnitForcing = UnitForcing()
    ) throws {
        if let threshold, !(threshold.isFinite && (0...1).contains(threshold)) {
            throw SettingError("threshold", "must be a number in [0, 1], got \(threshold)")
        }
        let (L, H) = (layout.layers, layout.heads)
        var masks = MaskValues(units: sub.mask.map(Float.init), layers: L, heads: H)
        let storedThreshold = sub.meta.get("threshold")?.doubleValue.map(Float.init)
        var rule = MaskRule.stored(madeAtThreshold: sub.logAlpha == nil ? nil : storedThreshold)
        if mode == .soft, let la = sub.logAlpha {
            rule = threshold.map { .deterministicThreshold($0) } ?? .deterministicSoft
            masks = MaskValues.fromLogAlpha(
                forcing.apply(logAlpha: la, layers: L, heads: H), layers: L, heads: H, threshold: threshold)
        } else if !forcing.isEmpty {
            if let la = sub.logAlpha {
                let stored = storedThreshold ?? 0.5
                rule = .deterministicThreshold(stored)
                masks = MaskValues.fromLogAlpha(
                    forcing.apply(logAlpha: la, layers: L, heads: H), layers: L, heads: H, threshold: stored)
            } else {
                masks = forcing.apply(masks: masks)
            }
        }
        // The stored achieved sparsity holds for masks as stored.
        self.init(
            name: sub.name, index: index,
            sparsity: rule.isStored && forcing.isEmpty ? sub.sparsity : masks.sparsity,
            seed: sub.meta.get("seed") ?? .null, masks: masks)
        self.maskRule = rule
        self.threshold = rule.threshold
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

    /// The full model alone.
    public static var fullModel: EvalSelection {
        EvalSelection(targets: [.full], ablation: .zero, total: 1, store: nil)
    }

    /// A store's subnetworks chosen by `filter` (with the full model first when `includeFull`) under `mode`,
    /// ablated as `ablation` says. `thresholds` (the reference's --step-size sweep) evaluates every subnetwork once
    /// per threshold, its soft values made binary at each, named "NAME@t=THRESHOLD".
    public static func fromStore(
        _ path: String, model: BertModel, filter: SubnetworkFilter, includeFull: Bool, mode: MaskMode,
        threshold: Float?, ablation: AblationSource, forcing: UnitForcing = UnitForcing(),
        thresholds: [Float]? = nil, warn: (String) -> Void
    ) throws -> EvalSelection {
        let store = try SubnetworkStore.open(path: path, warn: warn)
        try store.check(against: model)
        var targets = includeFull ? [EvalTarget.full] : []
        for sub in try filter.apply(store) {
            let sweep: [Float?] = thresholds.map { $0.map { Optional($0) } } ?? [threshold]
            for t in sweep {
                var target = try EvalTarget(
                    sub, index: targets.count, layout: store.layout, mode: thresholds == nil ? mode : .soft,
                    threshold: t, forcing: forcing)
                if thresholds != nil, let t { target.name += String(format: "@t=%g", t) }
                targets.append(target)
            }
        }
        let resolved = try resolve(ablation, store: store, model: model, warn: warn)
        return EvalSelection(targets: targets, ablation: resolved, total: targets.count, store: store)
    }

    /// A pruned run of the reference given as the model (`referenceRunSubnetwork`): its subnetwork under `mode`,
    /// with the full model first when `includeFull`.
    public static func fromRun(
        _ run: StoredSubnetwork, model: BertModel, includeFull: Bool, mode: MaskMode, threshold: Float?,
        ablation: AblationSource, forcing: UnitForcing = UnitForcing(), warn: (String) -> Void
    ) throws -> EvalSelection {
        var targets = includeFull ? [EvalTarget.full] : []
        targets.append(
            try EvalTarget(
                run, index: targets.count, layout: StoreLayout(model), mode: mode, threshold: threshold,
                forcing: forcing))
        let resolved = try resolve(ablation, store: nil, model: model, warn: warn)
        return EvalSelection(targets: targets, ablation: resolved, total: targets.count, store: nil)
    }

    /// One mask file, forced units set on / off.
    public static func fromMask(
        _ path: String, model: BertModel, ablation: AblationSource, forcing: UnitForcing = UnitForcing(),
        warn: (String) -> Void
    ) throws -> EvalSelection {
        let resolved = try resolve(ablation, store: nil, model: model, warn: warn)
        let loaded = try MaskValues.load(path: path)
        do { try model.checkMasks(loaded, resolved) } catch { throw ModelError.mismatch("\(path): \(error)") }
        let masks = forcing.apply(masks: loaded)
        var target = EvalTarget(name: path, index: 0, sparsity: masks.sparsity, seed: .null, masks: masks)
        target.maskRule = .stored(madeAtThreshold: nil)
        return EvalSelection(targets: [target], ablation: resolved, total: 1, store: nil)
    }

    /// What `source` names, for `model`.
    public static func resolve(
        _ source: AblationSource, store: SubnetworkStore?, model: BertModel, warn: (String) -> Void
    ) throws -> Ablation {
        switch source {
        case .zero: return .zero
        case .file(let path): return .mean(try MeanActivations.load(path: path, model: model, warn: warn))
        case .storeSet(let name):
            guard let store else { throw SettingError("activationSet", "names a store's set, but no store is given") }
            return .mean(try store.meanActivations(name, model: model))
        }
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

/// The reference's --step-size sweep: thresholds 0, S, 2S, … < 1 (numpy.arange(0, 1, S)).
public func thresholdSweep(stepSize s: Double) throws -> [Float] {
    guard s.isFinite, s > 0, s < 1 else { throw SettingError("stepSize", "must lie in (0, 1), got \(s)") }
    return (0..<Int((1 / s).rounded(.up))).map { Float(Double($0) * s) }.filter { $0 < 1 }
}
