// `hcore store` and `hcore eval` over many subnetworks, end to end through the binary.
import Checkpoint
import Foundation
import XCTest

final class StoreAndEvalCLITests: XCTestCase {
    let minilm = repo + "/Tests/Fixtures/models/minilm-nli"
    let hans = repo + "/data/hans/heuristics_evaluation_set.txt.zst"

    func makeStore(_ name: String, n: Int) throws -> String { try makeTestStore(name, n: n) }
}
