import Kernels

/// A copy of a row of Floats at an address that lives as long as the object: what a struct holding pointers (a
/// LayerNorm chain's steps) may point at, where an array's storage is only lent inside `withUnsafeBufferPointer`.
public final class PinnedRow: @unchecked Sendable {
    public let count: Int
    public let pointer: UnsafePointer<Float>

    public init(_ values: [Float]) {
        count = values.count
        let storage = allocateFloats(values.count)
        storage.initialize(from: values, count: values.count)
        pointer = UnsafePointer(storage)
    }

    deinit { UnsafeMutablePointer(mutating: pointer).deallocate() }
}
