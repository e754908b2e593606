// Seeded samples of a dataset that keep its strata: what every `--max-examples` takes, so a cap never means
// "the first N rows" (HANS files begin with 1,000 pairs of one subcase).
import Foundation
import Kernels

/// The stratum of an example: its HANS subcase, else its gold label, else one stratum for all.
public func stratum(_ e: Example) -> String { e.subcase ?? e.label ?? "" }

/// `n` example indices drawn without replacement with `seed`, spread as evenly as possible over the strata
/// (a stratum with fewer examples gives all of them and the rest goes to the others), in file order.
public func stratifiedSample(_ examples: [Example], count n: Int, seed: UInt64) -> [Int] {
    guard n < examples.count else { return Array(examples.indices) }
    var byStratum: [String: [Int]] = [:]
    for (i, e) in examples.enumerated() { byStratum[stratum(e), default: []].append(i) }
    var rng = SplitMix64(seed: seed)
    var pools = byStratum.keys.sorted().map { k -> [Int] in
        var xs = byStratum[k]!
        rng.shuffle(&xs)
        return xs
    }
    var taken: [Int] = []
    var left = n
    // Each round gives every non-empty stratum an equal share of what is left (at least one).
    while left > 0 {
        let open = pools.indices.filter { !pools[$0].isEmpty }
        guard !open.isEmpty else { break }
        let share = max(1, left / open.count)
        for s in open where left > 0 {
            let k = min(share, pools[s].count, left)
            taken += pools[s].prefix(k)
            pools[s].removeFirst(k)
            left -= k
        }
    }
    return taken.sorted()
}

/// Up to `perStratum` indices of each stratum in `strata` (nil: every stratum), drawn with `seed`, in file order.
public func perStratumSample(_ examples: [Example], perStratum k: Int, strata: [String]?, seed: UInt64) -> [Int] {
    var rng = SplitMix64(seed: seed)
    let wanted = strata.map(Set.init)
    var byStratum: [String: [Int]] = [:]
    for (i, e) in examples.enumerated() where wanted?.contains(stratum(e)) ?? true {
        byStratum[stratum(e), default: []].append(i)
    }
    var out: [Int] = []
    for key in byStratum.keys.sorted() {
        var xs = byStratum[key]!
        rng.shuffle(&xs)
        out += xs.prefix(k)
    }
    return out.sorted()
}

extension Dataset {
    /// `n` of its examples by `stratifiedSample`, in file order.
    public func sampled(_ n: Int, seed: UInt64) -> Dataset {
        var out = self
        out.examples = stratifiedSample(examples, count: n, seed: seed).map { examples[$0] }
        return out
    }

    /// `--max-examples N`: `sampled(n, seed:)` said through `warn`; itself when it holds no more than n.
    public func sampled(_ n: Int, seed: UInt64, warn: (String) -> Void) -> Dataset {
        guard n < count else { return self }
        warn(
            "\(path): a sample of \(n) of its \(count) examples, spread evenly over subcases (else labels), seed \(seed)"
        )
        return sampled(n, seed: seed)
    }
}
