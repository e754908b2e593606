// The one conversion every number from a file, a flag or the environment goes through before hcore computes
// with it: finite, inside the range the code can honour, integral where a count or a key is meant. Swift traps
// on `Int(1e300)` and on `Int.max + 1`; a number checked here can neither trap nor reach a loop bound, an
// allocation or a percent key out of range.

import Foundation

/// A number outside what its setting or field can take. Its kind is the caller's: a flag is a usage error
/// (exit 2), a field of a file is bad input (exit 3).
public struct NumberError: ClassifiedError {
    public let what: String
    public let value: String
    public let expected: String
    public let kind: FailureKind
    public var description: String { "\(what) is \(value); it must be \(expected)" }
}

public enum Checked {
    /// The largest integer a Double holds exactly; integral values beyond it are not counts.
    static let exactIntegers = 9_007_199_254_740_992.0

    /// `x` when it is finite and inside `range`.
    public static func finite(
        _ x: Double, in range: ClosedRange<Double>, _ what: @autoclosure () -> String, kind: FailureKind = .badInput
    ) throws -> Double {
        guard x.isFinite, range.contains(x) else {
            throw NumberError(
                what: what(), value: "\(x)", expected: "a finite number in \(describe(range))", kind: kind)
        }
        return x
    }

    /// `x` as an Int when it is integral and inside `range` (a count, a step, a key read as a JSON number).
    public static func integer(
        _ x: Double, in range: ClosedRange<Int>, _ what: @autoclosure () -> String, kind: FailureKind = .badInput
    ) throws -> Int {
        guard x.isFinite, x == x.rounded(), abs(x) <= exactIntegers, let i = Int(exactly: x), range.contains(i) else {
            let value = x.isFinite && x == x.rounded() && abs(x) < 1e15 ? "\(Int(x))" : "\(x)"
            throw NumberError(what: what(), value: value, expected: "an integer in \(describe(range))", kind: kind)
        }
        return i
    }

    /// A decimal integer written as text (a flag, an environment variable, a folder name's digits).
    public static func integer(
        _ text: String, in range: ClosedRange<Int>, _ what: @autoclosure () -> String, kind: FailureKind = .badInput
    ) throws -> Int {
        guard let i = Int(text.trimmingCharacters(in: .whitespaces)), range.contains(i) else {
            throw NumberError(
                what: what(), value: "'\(text)'", expected: "an integer in \(describe(range))", kind: kind)
        }
        return i
    }

    /// A fraction in [0, 1] as a whole percent (the reference's sparsity keys: 0.5 → 50).
    public static func percent(_ fraction: Double, _ what: @autoclosure () -> String, kind: FailureKind = .badInput)
        throws -> Int
    {
        Int((try finite(fraction, in: 0...1, what(), kind: kind) * 100).rounded())
    }

    /// The number of elements of a shape read from a file: every dimension in 1…`limit` and so is their product
    /// with any leading count a writer will multiply in (`times`), so no later product can overflow.
    public static func elements(
        _ shape: [Int], times: Int = 1, limit: Int = 1 << 31, _ what: @autoclosure () -> String,
        kind: FailureKind = .badInput
    ) throws -> Int {
        var n = times
        for d in shape {
            let (p, overflow) = n.multipliedReportingOverflow(by: d)
            guard d >= 1, !overflow, p <= limit else {
                throw NumberError(
                    what: what(), value: "\(shape)",
                    expected: "a shape of positive dimensions with at most \(limit) elements in all", kind: kind)
            }
            n = p
        }
        return n
    }

    static func describe<T: Comparable>(_ r: ClosedRange<T>) -> String { "[\(r.lowerBound), \(r.upperBound)]" }
}
