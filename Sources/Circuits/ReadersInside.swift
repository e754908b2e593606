// Claim 2 is about subnetworks: do the ones that generalise differ in how much later heads read from the core?
// Path patching from the core runs inside each matching subnetwork (its pruned units at their mean), and per
// receiver its effect across subnetworks is set against their OOD measure:
//
//   r          Pearson correlation over subnetworks of the receiver's mean Δ with the OOD measure
//   p          permutation p of |r| (the OOD measure shuffled over subnetworks, seeded)
//   partial r  the same after both are regressed on in-domain accuracy and HANS entailed accuracy (the label-lean
//              controls of the verdict), p by permuting the measure's residuals (Freedman–Lane)
//   q          Benjamini–Hochberg across receivers, of the partial p (of p when the controls are missing)
import Checkpoint
import Foundation
import Kernels
import Model
import Store

public struct InsideStatistic: Sendable {
    public var receiver: PatchReceiver
    /// Mean Δ in each subnetwork (`InsideReport.subnetworks` order).
    public var deltas: [Double]
    public var r: Double, p: Double
    public var partialR: Double, partialP: Double
    public var q: Double
}

public struct InsideReport: Sendable {
    public var subnetworks: [String]
    public var measure: [Double]
    public var inDomain: [Double]
    public var entailed: [Double]?
    public var measureName: String
    public var statistics: [InsideStatistic]
    public var permutations: Int, seed: UInt64
}

/// One subnetwork for `readersInside`: its masks and its values of the OOD measure, in-domain accuracy and
/// entailed accuracy.
public struct InsideSubnetwork {
    public var name: String
    public var masks: MaskValues
    public var measure: Double, inDomain: Double
    public var entailed: Double?
    public init(name: String, masks: MaskValues, measure: Double, inDomain: Double, entailed: Double?) {
        (self.name, self.masks, self.measure, self.inDomain, self.entailed) = (name, masks, measure, inDomain, entailed)
    }
}

/// Path patching of `senders` inside each of `subnetworks` (mean ablation by `activations`, the corruption
/// `corruption`) and the statistics of the file comment.
public func readersInside(
    model: BertModel, batches: [TokenBatch], senders: PatchSenders, subnetworks: [InsideSubnetwork],
    activations: MeanActivations, corruption: PatchCorruption, measureName: String, permutations: Int = 10_000,
    seed: UInt64 = 0, progress: ((String) -> Void)? = nil
) throws -> InsideReport {
    guard subnetworks.count >= 4 else {
        throw ModelError.badInput(
            "a correlation across subnetworks needs at least 4 of them (have \(subnetworks.count))")
    }
    let entailment = try entailmentIndex(model)
    let receivers = patchReceivers(senders: senders, layers: model.layerCount, heads: model.headCount)
    var means = [[Double]](repeating: [], count: receivers.count)  // [receiver][subnetwork]
    for (k, s) in subnetworks.enumerated() {
        progress?("subnetwork \(k + 1)/\(subnetworks.count): \(s.name)")
        var settings = PatchSettings()
        settings.subnetwork = (s.masks, .mean(activations))
        settings.total = false
        let e = try pathPatch(
            model: model, batches: batches, senders: senders, receivers: receivers, corruption: corruption,
            entailment: entailment, settings: settings)
        for r in receivers.indices { means[r].append(e.mean(r)) }
    }
    let y = subnetworks.map(\.measure)
    let a = subnetworks.map(\.inDomain)
    let b = subnetworks.allSatisfy({ $0.entailed != nil }) ? subnetworks.map { $0.entailed! } : nil
    let controls = [a] + (b.map { [$0] } ?? [])
    let ry = residualize(y, on: controls)
    var rng = SplitMix64(seed: seed)
    let shuffles = (0..<permutations).map { _ -> [Int] in
        var o = Array(y.indices)
        rng.shuffle(&o)
        return o
    }
    var stats = receivers.indices.map { r -> InsideStatistic in
        let x = means[r]
        let rx = residualize(x, on: controls)
        let (c, pc) = permutationCorrelation(x, y, shuffles)
        let (pr, pp) = permutationCorrelation(rx, ry, shuffles)
        return InsideStatistic(receiver: receivers[r], deltas: x, r: c, p: pc, partialR: pr, partialP: pp, q: .nan)
    }
    let q = benjaminiHochberg(stats.map { $0.partialP.isNaN ? $0.p : $0.partialP })
    for i in stats.indices { stats[i].q = q[i] }
    return InsideReport(
        subnetworks: subnetworks.map(\.name), measure: y, inDomain: a, entailed: b, measureName: measureName,
        statistics: stats, permutations: permutations, seed: seed)
}

/// Pearson r of x and y, and the permutation p of |r| over `shuffles` of y; NaN when either does not vary.
func permutationCorrelation(_ x: [Double], _ y: [Double], _ shuffles: [[Int]]) -> (Double, Double) {
    guard let r = pearson(x, y) else { return (.nan, .nan) }
    let extreme = shuffles.filter { o in abs(pearson(x, o.map { y[$0] }) ?? 0) >= abs(r) - 1e-12 }.count
    return (r, Double(1 + extreme) / Double(1 + shuffles.count))
}

/// Residuals of y after least squares on an intercept and `covariates` (Gram–Schmidt; a covariate that adds
/// nothing is skipped).
func residualize(_ y: [Double], on covariates: [[Double]]) -> [Double] {
    let n = y.count
    var basis: [[Double]] = [[Double](repeating: 1 / Double(n).squareRoot(), count: n)]
    for c in covariates {
        var v = c
        for q in basis {
            let dot = zip(v, q).reduce(0) { $0 + $1.0 * $1.1 }
            v = zip(v, q).map { $0 - dot * $1 }
        }
        let norm = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
        if norm > 1e-12 { basis.append(v.map { $0 / norm }) }
    }
    var out = y
    for q in basis {
        let dot = zip(out, q).reduce(0) { $0 + $1.0 * $1.1 }
        out = zip(out, q).map { $0 - dot * $1 }
    }
    return out
}

extension InsideReport {
    public var json: JSONValue {
        func f(_ x: Double) -> JSONValue { x.isNaN ? .null : .float(x) }
        return .object([
            ("subnetworks", .array(subnetworks.map { .string($0) })), ("measure", .string(measureName)),
            ("measure_values", .array(measure.map(f))), ("in_domain", .array(inDomain.map(f))),
            ("entailed", entailed.map { .array($0.map(f)) } ?? .null), ("permutations", .int(permutations)),
            ("seed", .unsigned(seed)),
            (
                "receivers",
                .array(
                    statistics.map { s in
                        .object([
                            ("receiver", .string(s.receiver.description)), ("delta", .array(s.deltas.map(f))),
                            ("r", f(s.r)), ("p", f(s.p)), ("partial_r", f(s.partialR)), ("partial_p", f(s.partialP)),
                            ("q", f(s.q)),
                        ])
                    })
            ),
        ])
    }

    /// The receivers whose effect tracks the OOD measure most, one line each.
    public func table(top: Int = 15) -> [String] {
        let order = statistics.indices.sorted {
            let (a, b) = (statistics[$0], statistics[$1])
            return (a.q.isNaN ? 2 : a.q, -abs(a.r.isNaN ? 0 : a.r)) < (b.q.isNaN ? 2 : b.q, -abs(b.r.isNaN ? 0 : b.r))
        }
        var lines = [
            "inside \(subnetworks.count) subnetworks: each receiver's Δ against \(measureName) (r, permutation p) and with in-domain accuracy\(entailed == nil ? "" : " and HANS entailed accuracy") partialled out (partial r, p, Benjamini–Hochberg q)",
            "receiver        Δ range               r       p        partial r  p        q",
        ]
        for i in order.prefix(top) {
            let s = statistics[i]
            lines.append(
                s.receiver.description.padding(toLength: 16, withPad: " ", startingAt: 0)
                    + String(format: "%+.4f…%+.4f   ", s.deltas.min() ?? .nan, s.deltas.max() ?? .nan)
                    + String(format: "%+.2f   %-9.3g%+.2f      %-9.3g%-9.3g", s.r, s.p, s.partialR, s.partialP, s.q))
        }
        return lines
    }
}
