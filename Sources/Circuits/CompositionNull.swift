// A usable null for weight composition. A head cannot compose with a head of an earlier layer, so the
// formula's scores on such anti-causal pairs are what it gives without composition — for the very weights
// and layer shapes at hand, unlike Gaussian draws. Per layer pair (a < b) the null is the H² anti-causal
// scores between the same two layers (a head of b "writing" into a head of a); a real score is reported
// with its percentile and z in that null. A receiver's strongest composition with the core — a maximum over
// several senders, larger by selection alone — is compared with the maximum of as many null draws, each from
// its sender's layer pair (seeded).
import Foundation
import Kernels
import Model

public struct CompositionNull: Sendable {
    /// "a-b" → the Q, K, V null scores of that layer pair, each sorted.
    let pools: [String: [[Double]]]

    public init(model: BertModel, foldLayerNorm: Bool) {
        self.init(
            antiCausal: composition(
                factors: headFactors(model: model), hidden: model.hidden, headDim: model.headDim, antiCausal: true,
                fold: foldLayerNorm ? { skipPathGains(model: model, from: $0, to: $1) } : nil))
    }

    init(antiCausal: [CompositionScore]) {
        var pools: [String: [[Double]]] = [:]
        for s in antiCausal {  // s.from is in the later layer: the pair (s.to.layer, s.from.layer)
            let key = "\(s.to.layer)-\(s.from.layer)"
            var p = pools[key] ?? [[], [], []]
            p[0].append(s.q)
            p[1].append(s.k)
            p[2].append(s.v)
            pools[key] = p
        }
        self.pools = pools.mapValues { $0.map { $0.sorted() } }
    }

    func pool(_ a: Int, _ b: Int, _ kind: Int) -> [Double] { pools["\(a)-\(b)"]?[kind] ?? [] }

    /// Share of the null of layer pair (a, b) strictly below `score`; kind 0, 1, 2 = Q, K, V.
    public func percentile(_ score: Double, from a: Int, to b: Int, kind: Int) -> Double {
        let p = pool(a, b, kind)
        guard !p.isEmpty else { return .nan }
        var lo = 0
        var hi = p.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if p[mid] < score { lo = mid + 1 } else { hi = mid }
        }
        return Double(lo) / Double(p.count)
    }

    public func z(_ score: Double, from a: Int, to b: Int, kind: Int) -> Double {
        let p = pool(a, b, kind)
        guard p.count > 1 else { return .nan }
        let m = p.reduce(0, +) / Double(p.count)
        let sd = (p.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(p.count - 1)).squareRoot()
        return sd > 0 ? (score - m) / sd : .nan
    }

}

extension CompositionReport {
    /// Edges between two core heads, with their percentiles in the null.
    public func coreEdges(core: Set<String>, null: CompositionNull) -> [(score: CompositionScore, percentile: [Double])]
    {
        scores.filter { core.contains(headName($0.from)) && core.contains(headName($0.to)) }.map { s in
            (
                s,
                [s.q, s.k, s.v].enumerated().map {
                    null.percentile($0.element, from: s.from.layer, to: s.to.layer, kind: $0.offset)
                }
            )
        }
    }
}

/// A receiver's strongest composition with the core against a null of its own: the same maximum over sender
/// sets drawn outside the core from the core's layers (as many heads per layer as the core has there, before
/// the receiver's layer), `draws` times (seeded). p = (1 + #{null ≥ observed}) / (1 + draws) per kind (Q, K,
/// V); q is Benjamini–Hochberg over every receiver and kind.
public struct ConditionedReceiver: Sendable {
    public let head: (layer: Int, head: Int)
    public let best: [Double]
    public let nullMedian: [Double]
    public let p: [Double]
    public var q: [Double]
}

extension CompositionReport {
    public func conditionedReceivers(
        core: [(layer: Int, head: Int)], layers L: Int, heads H: Int, draws: Int = 1000, seed: UInt64 = 0
    ) -> [ConditionedReceiver] {
        var byPair: [Int: CompositionScore] = [:]
        func key(_ a: (layer: Int, head: Int), _ b: (layer: Int, head: Int)) -> Int {
            ((a.layer * H + a.head) * L + b.layer) * H + b.head
        }
        for s in scores { byPair[key(s.from, s.to)] = s }
        let coreSet = Set(core.map { $0.layer * H + $0.head })
        var rng = SplitMix64(seed: seed)
        var out: [ConditionedReceiver] = []
        for lb in 0..<L {
            let senders = core.filter { $0.layer < lb }
            guard !senders.isEmpty else { continue }
            let perLayer = Dictionary(grouping: senders, by: \.layer).mapValues(\.count)
            let free = Dictionary(
                uniqueKeysWithValues: perLayer.keys.map { l in (l, (0..<H).filter { !coreSet.contains(l * H + $0) }) })
            let nullSets = (0..<draws).map { _ in
                perLayer.keys.sorted().flatMap { l -> [(layer: Int, head: Int)] in
                    var hs = free[l]!
                    rng.shuffle(&hs)
                    return hs.prefix(perLayer[l]!).map { (layer: l, head: $0) }
                }
            }
            for hb in 0..<H where !coreSet.contains(lb * H + hb) {
                let b = (layer: lb, head: hb)
                func best(_ set: [(layer: Int, head: Int)]) -> [Double] {
                    let s = set.compactMap { byPair[key($0, b)] }
                    return [s.map(\.q).max() ?? 0, s.map(\.k).max() ?? 0, s.map(\.v).max() ?? 0]
                }
                let observed = best(senders)
                let null = nullSets.map(best)
                let p = (0..<3).map { k in
                    Double(1 + null.filter { $0[k] >= observed[k] }.count) / Double(1 + draws)
                }
                let median = (0..<3).map { k in null.map { $0[k] }.sorted()[null.count / 2] }
                out.append(ConditionedReceiver(head: b, best: observed, nullMedian: median, p: p, q: p))
            }
        }
        let q = benjaminiHochberg(out.flatMap(\.p))
        for i in out.indices { out[i].q = Array(q[(3 * i)..<(3 * i + 3)]) }
        return out
    }
}
