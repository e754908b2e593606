// A core asked for by a store's path: where each subnetwork's in-domain value and the full model's come
// from, and the core's settings. Every circuits command, the report and the demo end in `heuristicCore`.
//
// In-domain values: an eval document (`hcore eval --store S --include-full`: the full model's row and every
// subnetwork's) or the store's metadata (`--write-back`) with the full model's value given. Without either the
// request is refused, unless every subnetwork is asked for explicitly (`allSubnetworks`).
import Checkpoint
import Eval
import Failures
import Foundation
import Model
import Store

public struct CoreRequest: Sendable {
    public var store: String
    /// The in-domain measure: a metadata key eval/DATASET, or a dataset key of `evalDocument` (nil: the only
    /// in-domain one).
    public var idMetric: String?
    /// The full model's in-domain value; nil: read from `evalDocument`.
    public var fullModel: Double?
    public var evalDocument: String?
    public var margin = MatchRule.referenceMargin
    public var minimumCount = 3
    /// Take every subnetwork, with no in-domain rule.
    public var allSubnetworks = false
    public var settings = CoreSettings()
    public init(store: String) { self.store = store }

    /// The evidence over the store's subnetworks (those `filter` keeps), checked against `model` when given.
    public func evidence(model: BertModel? = nil, filter: SubnetworkFilter? = nil, warn: (String) -> Void) throws
        -> CoreEvidence
    {
        let s = try SubnetworkStore.open(path: store, warn: warn)
        if let model { try s.check(against: model) }
        let subs = try filter.map { try $0.apply(s) } ?? s.subnetworks
        if allSubnetworks { return try heuristicCore(allOf: subs, layout: s.layout, settings: settings) }
        let (scored, rule) = try scoredWithRule(subs, fingerprint: s.fingerprint)
        return try heuristicCore(scored, rule: rule, layout: s.layout, settings: settings)
    }

    func scoredWithRule(_ subs: [StoredSubnetwork], fingerprint: String) throws -> ([ScoredSubnetwork], MatchRule) {
        if let path = evalDocument {
            let doc = try EvalDocument.read(path: path)
            guard doc.fingerprint == fingerprint else {
                throw ModelError.mismatch(
                    "\(path) evaluated model \(doc.fingerprint); the store holds subnetworks of \(fingerprint)")
            }
            let key = try inDomainKey(doc, path: path)
            guard let full = fullModel ?? doc.results.first(where: { $0.subnetwork == "full" })?.metrics[key]?.accuracy
            else {
                throw DataError.badFile(
                    path: path,
                    reason:
                        "has no full-model row on '\(key)' to match against; evaluate with the full model included, or give the full model's value"
                )
            }
            let byName = Dictionary(
                doc.results.compactMap { r in r.metrics[key].map { (r.subnetwork, $0.accuracy) } },
                uniquingKeysWith: { a, _ in a })
            let scored = try subs.map { s in
                guard let v = byName[s.name] else {
                    throw DataError.badFile(path: path, reason: "has no result for subnetwork '\(s.name)' on '\(key)'")
                }
                return ScoredSubnetwork(s, inDomain: v)
            }
            return (
                scored,
                try MatchRule(metric: key, full: full, margin: margin, minimumCount: minimumCount)
            )
        }
        guard let metric = idMetric ?? defaultInDomainMetric(subs) else {
            throw SettingError(
                "id-metric",
                "is needed: the store's subnetworks carry no single in-domain metric (write one back with hcore eval's write-back)"
            )
        }
        guard let full = fullModel else {
            throw SettingError(
                "id-reference",
                "is needed: a subnetwork matches when its \(metric) exceeds the full model's minus the margin; give the full model's value, or an eval document with its row (hcore eval with the full model included), or take every subnetwork"
            )
        }
        return (
            try scoredByMetadata(subs, metric: metric),
            try MatchRule(metric: metric, full: full, margin: margin, minimumCount: minimumCount)
        )
    }

    /// The document's in-domain dataset: `idMetric` (with or without its eval/ prefix), else its only dataset
    /// that is not HANS or PAWS.
    func inDomainKey(_ doc: EvalDocument, path: String) throws -> String {
        let keys = doc.datasets.map(\.key)
        if let m = idMetric {
            let key = m.hasPrefix("eval/") ? String(m.dropFirst(5)) : m
            guard keys.contains(key) else {
                throw DataError.badFile(path: path, reason: "has no dataset '\(key)' (it has \(keys))")
            }
            return key
        }
        let candidates = doc.datasets.filter { d in
            d.format != "hans" && !["hans", "paws"].contains { d.key.lowercased().contains($0) }
        }.map(\.key)
        guard candidates.count == 1 else {
            throw SettingError(
                "id-metric", "is needed: \(path) has \(candidates.count) in-domain candidates among \(keys)")
        }
        return candidates[0]
    }
}
