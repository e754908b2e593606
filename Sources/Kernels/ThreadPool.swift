// A persistent pool of worker threads for data-parallel loops.
//
// Why not DispatchQueue.concurrentPerform: on these 2-core machines it was measured spinning visibly
// under contention, and it gives no control over the number of threads. Here `parallelFor(n)` hands
// indices 0..<n to the caller's thread plus (threads - 1) parked workers through one atomic counter.
// Which thread runs an index never changes what is computed for it, so results do not depend on the
// thread count (every kernel below is written so that each output element has one fixed order of
// floating-point operations).
import Foundation
import Synchronization

public final class ThreadPool: @unchecked Sendable {
    /// The process-wide pool: `Settings.threads` threads (HCORE_THREADS, else the active processors).
    public static let shared = ThreadPool(threads: Settings.threads)

    /// A pool that runs everything on the calling thread.
    public static let serial = ThreadPool(threads: 1)

    nonisolated(unsafe) private static var cache: [Int: ThreadPool] = [:]
    private static let cacheLock = NSLock()

    /// One process-wide pool per size (pools and their threads are never torn down, so share them).
    public static func sized(_ threads: Int) -> ThreadPool {
        cacheLock.lock()
        defer { cacheLock.unlock() }
        if let p = cache[threads] { return p }
        let p = ThreadPool(threads: threads)
        cache[threads] = p
        return p
    }

    public let threadCount: Int

    // A job is published by bumping `generation`. Workers spin on it for a bounded time (a GEMM of a
    // short batch lasts well under a millisecond, so waking a parked thread through the kernel would
    // cost a noticeable share), then park on their semaphore. `state[w]` says whether worker w is
    // parked; the publisher flips it back with an exchange and signals only parked workers, so every
    // signal is consumed exactly once.
    private let generation = Atomic<Int>(0)
    private let next = Atomic<Int>(0)
    private let pending = Atomic<Int>(0)
    private final class Flag: Sendable { let value = Atomic<Int>(0) }
    private let parked: [Flag]  // 1 = parked (waiting on its semaphore), 0 = awake
    private var jobCount = 0
    private var job: ((Int) -> Void)?
    private let wake: [DispatchSemaphore]
    private let submit = NSLock()  // one parallelFor at a time; nested calls run serially
    private static let spinIterations = 200_000

    /// Starts `threads - 1` worker threads that live as long as the process. Prefer `sized(_:)`.
    public init(threads: Int) {
        threadCount = max(1, threads)
        let workers = max(0, threadCount - 1)
        wake = (0..<workers).map { _ in DispatchSemaphore(value: 0) }
        parked = (0..<workers).map { _ in Flag() }
        for w in 0..<workers {
            let t = Thread { self.workerLoop(w) }  // workers keep their pool alive: pools live for the process
            t.stackSize = 1 << 22
            t.name = "hcore-worker-\(w)"
            t.start()
        }
    }

    private func workerLoop(_ w: Int) {
        var seen = 0
        while true {
            var spins = 0
            while generation.load(ordering: .acquiring) == seen && spins < Self.spinIterations { spins += 1 }
            if generation.load(ordering: .acquiring) == seen {
                parked[w].value.store(1, ordering: .sequentiallyConsistent)
                if generation.load(ordering: .sequentiallyConsistent) == seen {
                    wake[w].wait()  // the publisher cleared `parked` and signalled
                } else if parked[w].value.exchange(0, ordering: .sequentiallyConsistent) == 0 {
                    wake[w].wait()  // the publisher beat us to it: consume its signal
                }
            }
            seen = generation.load(ordering: .acquiring)
            drain()
            pending.subtract(1, ordering: .releasing)
        }
    }

    private func drain() {
        guard let body = job else { return }
        let n = jobCount
        while true {
            let i = next.add(1, ordering: .relaxed).oldValue
            if i >= n { break }
            body(i)
        }
    }

    /// Runs `body(i)` for every i in 0..<n, spread over the pool, and returns when all are done.
    /// A call made from inside a running `body` (or while another call is in flight) runs serially.
    public func parallelFor(_ n: Int, _ body: (Int) -> Void) {
        if n <= 0 { return }
        if threadCount == 1 || n == 1 || !submit.try() {
            for i in 0..<n { body(i) }
            return
        }
        defer { submit.unlock() }
        withoutActuallyEscaping(body) { escaping in
            job = escaping
            jobCount = n
            next.store(0, ordering: .relaxed)
            pending.store(wake.count, ordering: .relaxed)
            generation.add(1, ordering: .sequentiallyConsistent)
            for w in wake.indices where parked[w].value.exchange(0, ordering: .sequentiallyConsistent) == 1 {
                wake[w].signal()
            }
            drain()
            var spins = 0
            while pending.load(ordering: .acquiring) > 0 {
                spins += 1
                if spins > 1000 { sched_yield() }
            }
            job = nil
        }
    }
}
