// Hard-concrete sampling and the deterministic rule against Tests/Fixtures/golden/minilm-nli_gradients
// (cases hc0…hc3, GOLDEN-README.md §5).
import Checkpoint
import Foundation
import Model
import Prune
import TestSupport
import XCTest

final class HardConcreteTests: XCTestCase {
    func testGoldenCases() throws {
        let g = try SafetensorsFile(path: fixtures + "/golden/minilm-nli_gradients.safetensors")
        let j =
            try JSONSerialization.jsonObject(
                with: Data(contentsOf: URL(fileURLWithPath: fixtures + "/golden/minilm-nli_gradients.json")))
            as! [String: Any]
        let zeros = (j["hard_concrete"] as! [[String: Any]]).map { $0["num_zeros"] as! Int }
        for c in 0..<4 {
            let la = try g.floats("hc\(c).log_alpha")
            let u = try g.floats("hc\(c).u")
            let wantSample = try g.floats("hc\(c).z_sample")
            let wantDet = try g.floats("hc\(c).z_deterministic")
            let sample = zip(la, u).map { HardConcrete.sample(logAlpha: $0, u: $1) }
            for i in la.indices { XCTAssertEqual(sample[i], wantSample[i], accuracy: 1e-6, "hc\(c) sample \(i)") }
            let (det, k) = HardConcrete.deterministic(la)
            XCTAssertEqual(k, zeros[c], "hc\(c) k")
            for i in la.indices { XCTAssertEqual(det[i], wantDet[i], accuracy: 1e-6, "hc\(c) deterministic \(i)") }
            XCTAssertEqual(det.filter { $0 == 0 }.count, wantDet.filter { $0 == 0 }.count)
        }
    }

    func testPerModuleRuleAndThreshold() {
        // Layer of 4 heads: two strongly kept, two strongly pruned; MLP gates kept/pruned.
        let la: [Float] = [8, 9, -8, -9, 7, -7]
        let m = MaskValues.fromLogAlpha(la, layers: 1, heads: 4, threshold: 0.5)
        XCTAssertEqual(m.heads, [[1, 1, 0, 0]])
        XCTAssertEqual(m.mlps, [1])
        let two = MaskValues.fromLogAlpha([8, 9, -8, -9, 8, 9, 9, 9, 7, -7], layers: 2, heads: 4, threshold: nil)
        XCTAssertEqual(two.mlps[1], 0)
        XCTAssertEqual(two.heads[0][2], 0)
        XCTAssertEqual(two.heads[0][0], Float(1 / (1 + exp(-8.0 / (2.0 / 3.0) * 0.8))), accuracy: 1e-6)
    }
}
