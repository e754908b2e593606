// Every numeric flag checked once, when the command line is parsed and before any work: a Double or Float must
// be finite, an integer must be in a range the computation can honour (a batch of Int.max pairs overflows the
// batch cursor; a threshold of NaN keeps nothing), and the range is in the message. Ranges are set by the
// property's name across commands (one table); a name not in it gets its type's rule.
import ArgumentParser
import Failures

/// The values a numeric flag can hold, seen as a Double (nil: not given).
protocol NumericArgument {
    var number: Double? { get }
    static var isInteger: Bool { get }
}
extension Double: NumericArgument {
    var number: Double? { self }
    static var isInteger: Bool { false }
}
extension Float: NumericArgument {
    var number: Double? { Double(self) }
    static var isInteger: Bool { false }
}
extension Int: NumericArgument {
    var number: Double? { Double(self) }
    static var isInteger: Bool { true }
}
extension Optional: NumericArgument where Wrapped: NumericArgument {
    var number: Double? { self?.number }
    static var isInteger: Bool { Wrapped.isInteger }
}

/// An @Option whose value is numeric, and an @OptionGroup to look into.
protocol NumericFlag {
    var number: Double? { get }
    var isInteger: Bool { get }
}
extension Option: NumericFlag where Value: NumericArgument {
    var number: Double? { wrappedValue.number }
    var isInteger: Bool { Value.isInteger }
}
protocol FlagGroup { var group: Any { get } }
extension OptionGroup: FlagGroup { var group: Any { wrappedValue } }

enum NumericFlags {
    /// Counts that size a loop or an allocation: positive, and small enough that products of two of them fit.
    static let count = 1.0...1e9
    /// The range of each numeric setting, by its property name in the commands.
    static let ranges: [String: ClosedRange<Double>] = [
        "batchSize": 1...65_536, "accumulation": 1...65_536, "maxLength": 1...65_536,
        "threshold": 0...1, "margin": 0...1, "fraction": 0...1, "stepSize": 1e-6...1,
        "targetSparsity": 0...1, "targetSparsityOption": 0...1, "startSparsity": 0...1, "maxSparsity": 0...1,
        "dropout": 0...0.999, "attentionDropout": 0...0.999, "weightDecay": 0...1, "warmupRatio": 0...1,
        "learningRate": 0...10, "regLearningRate": 0...1_000, "maxGradNorm": 0...1e6, "idReference": 0...1,
        "evalSteps": 0...1e9, "sparsityWarmup": 0...1e9, "warmupSteps": 0...1e9, "saveSteps": 0...1e9,
        "epochs": 1...100_000, "epochsOption": 1...100_000,
    ]

    /// Checks every numeric flag of `command` and its option groups; the first out of range is a usage error.
    static func check(_ command: Any, arguments: [String]) throws {
        for child in Mirror(reflecting: command).children {
            guard let label = child.label else { continue }
            if let group = child.value as? FlagGroup {
                try check(group.group, arguments: arguments)
                continue
            }
            guard let flag = child.value as? NumericFlag, let x = flag.number else { continue }
            let name = String(label.drop { $0 == "_" })
            let range = ranges[name] ?? (flag.isInteger ? count : -1e9...1e9)
            // the flag's spelling is looked up in the arguments only for the message of a refusal
            if flag.isInteger {
                _ = try Checked.integer(
                    x, in: Int(range.lowerBound)...Int(range.upperBound), spelling(of: name, value: x, in: arguments),
                    kind: .usage)
            } else {
                _ = try Checked.finite(x, in: range, spelling(of: name, value: x, in: arguments), kind: .usage)
            }
        }
    }

    /// The flag as the user typed it: the one given this value (its kebab-case name first when several were),
    /// else the property's kebab-case name.
    static func spelling(of name: String, value x: Double, in arguments: [String]) -> String {
        let kebab = "--" + name.reduce(into: "") { out, c in out += c.isUppercase ? "-" + c.lowercased() : String(c) }
        var given: [String] = []
        for (k, argument) in arguments.enumerated() where argument.hasPrefix("--") {
            let parts = argument.split(separator: "=", maxSplits: 1).map(String.init)
            guard let text = parts.count == 2 ? parts[1] : k + 1 < arguments.count ? arguments[k + 1] : nil,
                let v = Double(text), v == x || (v.isNaN && x.isNaN)
            else { continue }
            given.append(parts[0])
        }
        return given.contains(kebab) || given.count != 1 ? kebab : given[0]
    }
}
