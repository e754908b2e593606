// Choosing subnetworks of a store by tag, metadata and sparsity (`store ls`, `store export`, `eval`).
import Checkpoint
import Failures

public struct SubnetworkFilter: Sendable {
    /// One metadata condition: KEY=VALUE (string or number), KEY>=NUMBER, KEY<=NUMBER.
    public struct Condition: Sendable {
        public enum Comparison: Sendable {
            case equal(String)
            case atLeast(Double)
            case atMost(Double)
        }
        public let key: String
        public let comparison: Comparison

        /// Parses `KEY=VALUE`, `KEY>=NUMBER` or `KEY<=NUMBER`; nil when the text is none of these.
        public init?(_ text: String) {
            for op in [">=", "<=", "="] {
                guard let r = text.range(of: op) else { continue }
                key = String(text[..<r.lowerBound])
                let value = String(text[r.upperBound...])
                switch op {
                case "=": comparison = .equal(value)
                default:
                    guard let x = Double(value) else { return nil }
                    comparison = op == ">=" ? .atLeast(x) : .atMost(x)
                }
                return
            }
            return nil
        }

        func holds(for meta: JSONValue) -> Bool {
            let v = meta.get(key)
            switch comparison {
            case .equal(let value):
                let s = v?.stringValue ?? v.map { $0.compact } ?? ""
                return s == value || (Double(value) != nil && v?.doubleValue == Double(value))
            case .atLeast(let x): return v?.doubleValue.map { $0 >= x } ?? false
            case .atMost(let x): return v?.doubleValue.map { $0 <= x } ?? false
            }
        }
    }

    public var tag: String?
    public var conditions: [Condition]
    public var minSparsity: Double?
    public var maxSparsity: Double?
    /// Only these names (nil: all); a name the store lacks is an error, not an empty result.
    public var names: [String]?

    public init(
        tag: String? = nil, conditions: [Condition] = [], minSparsity: Double? = nil, maxSparsity: Double? = nil,
        names: [String]? = nil
    ) {
        self.tag = tag
        self.conditions = conditions
        self.minSparsity = minSparsity
        self.maxSparsity = maxSparsity
        self.names = names
    }

    /// The filter as text spells it: conditions `KEY=VALUE`, `KEY>=N`, `KEY<=N`.
    public init(tag: String?, conditions: [String], minSparsity: Double?, maxSparsity: Double?, names: [String]?) throws
    {
        let parsed = try conditions.map { c in
            guard let condition = Condition(c) else {
                throw SettingError("where", "\(c): use KEY=VALUE, KEY>=NUMBER or KEY<=NUMBER")
            }
            return condition
        }
        self.init(tag: tag, conditions: parsed, minSparsity: minSparsity, maxSparsity: maxSparsity, names: names)
    }

    public func apply(_ store: SubnetworkStore) throws -> [StoredSubnetwork] {
        for n in names ?? [] where !store.subnetworks.contains(where: { $0.name == n }) {
            throw CheckpointError.notFound(
                path: store.path, reason: "no subnetwork '\(n)' (see `hcore store ls \(store.path)`)")
        }
        return store.subnetworks.filter(accepts)
    }

    public func accepts(_ sub: StoredSubnetwork) -> Bool {
        if let names, !names.contains(sub.name) { return false }
        if let tag, !(sub.meta.get("tags")?.arrayValue ?? []).contains(where: { $0.stringValue == tag }) {
            return false
        }
        if let minSparsity, sub.sparsity < minSparsity - 1e-9 { return false }
        if let maxSparsity, sub.sparsity > maxSparsity + 1e-9 { return false }
        return conditions.allSatisfy { $0.holds(for: sub.meta) }
    }
}
