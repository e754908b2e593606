// The subnetwork store (docs/store-format.md): exact round trips, compact mask storage, and damage:
// every byte flipped and every truncation end in a clean error or a committed state — never a wrong mask.
import Checkpoint
import Foundation
import Store
import TestSupport
import XCTest

func tempPath(_ name: String) -> String {
    let dir = NSTemporaryDirectory() + "hcore-store-tests-\(getpid())"
    try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    let p = dir + "/" + name
    try? FileManager.default.removeItem(atPath: p)
    return p
}

/// Subnetworks "around a shared core": each unit has a keep probability — 35% of units always kept (the
/// core), 35% almost always pruned (p = 0.05), 30% coin flips — as the paper's keep frequencies look.
func coreSubnetworks(_ n: Int, layout: StoreLayout, seed: UInt64, alphas: Bool = false) -> [StoredSubnetwork] {
    var rng = SeededRNG(seed)
    let U = layout.unitCount
    let p: [Double] = (0..<U).map { _ in
        let r = rng.uniformDouble()
        return r < 0.35 ? 1 : r < 0.7 ? 0.05 : 0.5
    }
    return (0..<n).map { i in
        let mask = p.map { UInt8(rng.uniformDouble() < $0 ? 1 : 0) }
        let la: [Float]? = alphas ? mask.map { Float($0) * 4 - 2 + Float(rng.uniformDouble()) } : nil
        return StoredSubnetwork(
            name: "sub-\(i)", mask: mask, logAlpha: la,
            meta: .object([("seed", .int(i)), ("target_sparsity", 0.5), ("tags", .array(["core"]))]))
    }
}
