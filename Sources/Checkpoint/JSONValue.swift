// JSON output whose key order is the order written (Foundation's serializer sorts or scrambles keys),
// and whose floats print in their shortest round-trip form.

public indirect enum JSONValue: Sendable, ExpressibleByStringLiteral, ExpressibleByIntegerLiteral,
    ExpressibleByFloatLiteral, ExpressibleByBooleanLiteral, ExpressibleByArrayLiteral
{
    case null
    case bool(Bool)
    case int(Int)
    case float(Double)
    case string(String)
    case array([JSONValue])
    case object([(String, JSONValue)])

    public init(stringLiteral v: String) { self = .string(v) }
    public init(integerLiteral v: Int) { self = .int(v) }
    public init(floatLiteral v: Double) { self = .float(v) }
    public init(booleanLiteral v: Bool) { self = .bool(v) }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }

    public static func floats(_ v: [Float]) -> JSONValue { .array(v.map { .float(Double($0)) }) }
    public static func float32(_ v: Float) -> JSONValue { .float(Double(v)) }
    /// An unsigned value (a seed) exactly: an integer when it fits JSON's Int here, else its decimal string.
    public static func unsigned(_ v: UInt64) -> JSONValue { Int(exactly: v).map { .int($0) } ?? .string(String(v)) }

    /// Compact one-line JSON.
    public var compact: String {
        var s = ""
        write(&s, indent: nil, level: 0)
        return s
    }

    /// Indented JSON for people.
    public var pretty: String {
        var s = ""
        write(&s, indent: "  ", level: 0)
        return s
    }

    subscript(key: String) -> JSONValue? {
        if case .object(let kv) = self { return kv.first { $0.0 == key }?.1 }
        return nil
    }

    private func write(_ s: inout String, indent: String?, level: Int) {
        switch self {
        case .null: s += "null"
        case .bool(let b): s += b ? "true" : "false"
        case .int(let i): s += String(i)
        case .float(let d):
            if d.isNaN || d.isInfinite {
                s += "null"
            } else if d == d.rounded() && abs(d) < 1e15 {
                s += String(format: "%.1f", d)
            } else if Double(Float(d)) == d {
                s += "\(Float(d))"
            }  // an fp32 value: shortest fp32 form
            else {
                s += "\(d)"
            }
        case .string(let t): s += jsonString(t)
        case .array(let a):
            if a.isEmpty {
                s += "[]"
                return
            }
            let simple = a.allSatisfy {
                if case .array = $0 { return false }
                if case .object = $0 { return false }
                return true
            }
            s += "["
            for (i, v) in a.enumerated() {
                if i > 0 { s += indent == nil || simple ? (indent == nil ? "," : ", ") : "," }
                if let indent, !simple { s += "\n" + String(repeating: indent, count: level + 1) }
                v.write(&s, indent: indent, level: level + 1)
            }
            if let indent, !simple { s += "\n" + String(repeating: indent, count: level) }
            s += "]"
        case .object(let kv):
            if kv.isEmpty {
                s += "{}"
                return
            }
            s += "{"
            for (i, (k, v)) in kv.enumerated() {
                if i > 0 { s += indent == nil ? "," : "," }
                if let indent { s += "\n" + String(repeating: indent, count: level + 1) }
                s += jsonString(k) + (indent == nil ? ":" : ": ")
                v.write(&s, indent: indent, level: level + 1)
            }
            if let indent { s += "\n" + String(repeating: indent, count: level) }
            s += "}"
        }
    }
}
