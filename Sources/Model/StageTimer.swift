// Optional per-stage wall-clock accounting of the forward pass (HCORE_PROFILE=1, or set `enabled`),
// for benchmarks and for finding where time goes. Off by default: then it costs one branch per stage.
import Foundation

public final class StageTimer: @unchecked Sendable {
    public static let shared = StageTimer()
    public var enabled = ModelSettings.profile
    public private(set) var seconds: [String: Double] = [:]
    private var order: [String] = []

    @inline(__always)
    public func measure<T>(_ stage: String, _ body: () throws -> T) rethrows -> T {
        guard enabled else { return try body() }
        let t = DispatchTime.now().uptimeNanoseconds
        let r = try body()
        let dt = Double(DispatchTime.now().uptimeNanoseconds - t) / 1e9
        if seconds[stage] == nil { order.append(stage) }
        seconds[stage, default: 0] += dt
        return r
    }

    public func reset() {
        seconds = [:]
        order = []
    }

    public var report: String {
        let total = seconds.values.reduce(0, +)
        return order.map {
            String(
                format: "  %-14@ %7.3f s  %5.1f%%", $0 as NSString, seconds[$0]!, 100 * seconds[$0]! / max(total, 1e-12)
            )
        }
        .joined(separator: "\n")
    }
}
