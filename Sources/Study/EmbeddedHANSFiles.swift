// The two HANS files compiled into hcore (Sources/EmbeddedHANS), so the demo and every command that defaults
// to HANS run from any folder, without the repository.
import Checkpoint
import EmbeddedHANS
import Eval
import Foundation

public enum EmbeddedHANSFiles {
    /// heuristics_evaluation_set.txt: 30,000 pairs, 1,000 of each subcase.
    public static func evaluation() throws -> Dataset {
        try load("heuristics_evaluation_set.txt", hcore_hans_evaluation_zst)
    }
    /// heuristics_train_set.txt.
    public static func train() throws -> Dataset { try load("heuristics_train_set.txt", hcore_hans_train_zst) }

    /// What `--data` names when it is this file: its path in messages and documents.
    public static let evaluationPath = "<embedded>/hans/heuristics_evaluation_set.txt"

    static func load(_ base: String, _ embedded: (UnsafeMutablePointer<Int>) -> UnsafePointer<UInt8>?) throws
        -> Dataset
    {
        var size = 0
        let bytes = try Zstd.decompress(
            Array(UnsafeBufferPointer(start: embedded(&size), count: size)), name: "embedded " + base)
        return try Dataset.parse(bytes, path: "<embedded>/hans/" + base, format: .hans)
    }
}
