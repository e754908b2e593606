// A prunable unit: one attention head or one layer's MLP block. Everywhere (masks, the store, importance,
// circuits) units are ordered heads layer-major (l, h), then one MLP per layer.
// Spelled as the reference spells them (`a4.h3`, `a2.mlp`); parsing also accepts `l4.h3`, `L4H3`,
// `4.3`, `4:3` for heads and `m2`, `l2.mlp`, `mlp2` for MLPs.
import Foundation

public struct PrunableUnit: Hashable, Sendable, Comparable, CustomStringConvertible {
    public let layer: Int
    /// nil: the layer's MLP.
    public let head: Int?

    public init(layer: Int, head: Int?) {
        self.layer = layer
        self.head = head
    }

    public static func head(_ layer: Int, _ head: Int) -> PrunableUnit { PrunableUnit(layer: layer, head: head) }
    public static func mlp(_ layer: Int) -> PrunableUnit { PrunableUnit(layer: layer, head: nil) }

    public var isMLP: Bool { head == nil }
    public var description: String { head.map { "a\(layer).h\($0)" } ?? "a\(layer).mlp" }

    /// The unit at position `index` of the store order for a model of `layers` × `heads`.
    public init(index: Int, layers: Int, heads: Int) {
        self = index < layers * heads ? .head(index / heads, index % heads) : .mlp(index - layers * heads)
    }

    /// Its position in the store order.
    public func index(layers: Int, heads: Int) -> Int {
        head.map { layer * heads + $0 } ?? layers * heads + layer
    }

    public static func < (a: PrunableUnit, b: PrunableUnit) -> Bool {
        // Store order: every head before every MLP.
        switch (a.head, b.head) {
        case (let x?, let y?): return (a.layer, x) < (b.layer, y)
        case (nil, nil): return a.layer < b.layer
        case (_?, nil): return true
        case (nil, _?): return false
        }
    }

    /// Parses the spellings above; nil when `text` is none of them.
    public init?(_ text: String) {
        let s = text.trimmingCharacters(in: .whitespaces).lowercased()
        func number(_ t: Substring) -> Int? { Int(t).flatMap { $0 >= 0 ? $0 : nil } }
        for prefix in ["mlp", "m"] where s.hasPrefix(prefix) {
            if let l = number(s.dropFirst(prefix.count)) {
                self = .mlp(l)
                return
            }
        }
        let body = s.hasPrefix("a") || s.hasPrefix("l") ? s.dropFirst() : Substring(s)
        let parts = body.split(omittingEmptySubsequences: false) { $0 == "." || $0 == ":" || $0 == "h" }.filter {
            !$0.isEmpty
        }
        if parts.count == 2, let l = number(parts[0]) {
            if parts[1] == "mlp" {
                self = .mlp(l)
                return
            }
            if let h = number(parts[1]) {
                self = .head(l, h)
                return
            }
        }
        return nil
    }
}
