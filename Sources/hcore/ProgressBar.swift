// Progress of long work on the terminal.
import Checkpoint
import Foundation

/// A one-line progress bar on a terminal's stderr; silent when stderr is not a terminal.
public final class ProgressBar {
    public let total: Int, label: String, enabled: Bool
    let start = Date()
    var last = Date.distantPast

    public init(_ label: String, total: Int, force: Bool = false) {
        self.label = label
        self.total = total
        enabled = force || isatty(2) == 1
    }

    public func update(_ done: Int) {
        guard enabled else { return }
        let now = Date()
        if done < total && now.timeIntervalSince(last) < 0.1 { return }
        last = now
        let elapsed = now.timeIntervalSince(start)
        let rate = Double(done) / max(elapsed, 1e-9)
        let eta = rate > 0 ? Double(total - done) / rate : 0
        let width = 30
        let filled = total > 0 ? min(width, width * done / total) : width
        let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
        let line = String(format: "\r%@ %@ %d/%d  %.0f/s  ETA %.0fs ", label, bar, done, total, rate, eta)
        try? writeAll(2, Array((done >= total ? line + "\n" : line).utf8), shownAs: "standard error")
    }
}

/// One progress bar per named stage of long work, a new bar when the stage changes.
public final class StageProgress {
    var bar: ProgressBar?
    public init() {}
    public func update(_ label: String, _ done: Int, _ total: Int) {
        if bar?.label != label { bar = ProgressBar(label, total: total) }
        bar?.update(done)
    }
}
