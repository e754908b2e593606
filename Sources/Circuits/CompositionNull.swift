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
                factors: headFactors(model: model, foldLayerNorm: foldLayerNorm), hidden: model.hidden,
                headDim: model.headDim, antiCausal: true))
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

    /// Share of `draws` null maxima (one draw per sender layer, from its pair with `receiver`) below `observed`.
    public func maxPercentile(
        _ observed: Double, senderLayers: [Int], receiver b: Int, kind: Int, draws: Int = 1000, seed: UInt64 = 0
    ) -> Double {
        var rng = SplitMix64(seed: seed)
        var below = 0
        for _ in 0..<draws {
            var m = -Double.infinity
            for a in senderLayers {
                let p = pool(a, b, kind)
                if !p.isEmpty { m = max(m, p[Int(rng.next() % UInt64(p.count))]) }
            }
            if m < observed { below += 1 }
        }
        return Double(below) / Double(max(1, draws))
    }
}

/// A receiver's strongest Q, K and V composition with the core, each with its null-max percentile.
public struct CoreReceiver: Sendable {
    public let head: (layer: Int, head: Int)
    public let best: [Double]  // Q, K, V: max over core senders in earlier layers
    public let percentile: [Double]  // of each among null maxima over as many senders
}

extension CompositionReport {
    /// Receivers outside the core (core → core edges are reported apart, in `coreEdges`).
    public func coreReceivers(core: Set<String>, null: CompositionNull) -> [CoreReceiver] {
        var byReceiver: [String: [CompositionScore]] = [:]
        for s in scores where core.contains(headName(s.from)) && !core.contains(headName(s.to)) {
            byReceiver[headName(s.to), default: []].append(s)
        }
        return byReceiver.values.map { edges in
            let to = edges[0].to
            let layers = edges.map(\.from.layer)
            let best = [edges.map(\.q).max()!, edges.map(\.k).max()!, edges.map(\.v).max()!]
            return CoreReceiver(
                head: to, best: best,
                percentile: (0..<3).map {
                    null.maxPercentile(
                        best[$0], senderLayers: layers, receiver: to.layer, kind: $0,
                        seed: UInt64(to.layer * 1000 + to.head))
                })
        }.sorted { $0.percentile.max()! > $1.percentile.max()! }
    }

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
