import Kernels

/// Buffers of the forward and mask-gradient passes kept between calls. Pruning and evaluation run thousands
/// of batches of similar sizes: fresh multi-megabyte allocations cost a page fault and a page clear per 4 KB
/// every time, and a stream of slowly growing sizes (length-sorted evaluation batches) made glibc's heap
/// grow without bound (6 GB resident for the 30,000 HANS pairs before these arenas).
/// Buffers are handed out in call order, so the same code path gets the same buffer back; uninitialised.
public final class ScratchArena {
    public init() {}
    private var buffers: [(pointer: UnsafeMutablePointer<Float>, capacity: Int)] = []
    private var next = 0
    /// Hands the buffers out again from the first.
    public func reset() { next = 0 }
    /// The next buffer, of at least `count` floats (grown by a quarter when it must grow).
    public func take(_ count: Int) -> UnsafeMutablePointer<Float> {
        defer { next += 1 }
        if next < buffers.count {
            if buffers[next].capacity >= count { return buffers[next].pointer }
            buffers[next].pointer.deallocate()
            buffers[next] = (allocateFloats(count * 5 / 4 + 16), count * 5 / 4 + 16)
            return buffers[next].pointer
        }
        buffers.append((allocateFloats(count * 5 / 4 + 16), count * 5 / 4 + 16))
        return buffers[next].pointer
    }
    deinit { for b in buffers { b.pointer.deallocate() } }
}

extension BertModel {
    /// An arena of this model's pool, reset (callers running at the same time each get their own).
    func takeArena() -> ScratchArena {
        lazyLock.lock()
        let arena = arenaPool.popLast() ?? ScratchArena()
        lazyLock.unlock()
        arena.reset()
        return arena
    }

    func returnArena(_ arena: ScratchArena) {
        lazyLock.lock()
        arenaPool.append(arena)
        lazyLock.unlock()
    }
}

extension BertModel {
    /// `body` with an arena of this model's pool, returned to the pool afterwards.
    package func withArena<T>(_ body: (ScratchArena) throws -> T) rethrows -> T {
        let arena = takeArena()
        defer { returnArena(arena) }
        return try body(arena)
    }
}
