// Each library error case maps to the kind (and so the exit code) the README documents.
import Checkpoint
import Failures
import XCTest

final class FailureKindTests: XCTestCase {
    func testExitCodesAreTheDocumentedOnes() {
        XCTAssertEqual(FailureKind.allCases.map(\.rawValue), [1, 2, 3, 4, 5, 130])
    }

    func testCheckpointErrorKinds() {
        XCTAssertEqual(CheckpointError.writeFailed(path: "p", reason: "r").kind, .writeFailed)
        XCTAssertEqual(CheckpointError.shapeMismatch(path: "p", name: "n", expected: [1], found: [2]).kind, .mismatch)
        for e in [
            CheckpointError.cannotOpen(path: "p", reason: "r"), .malformed(path: "p", offset: 3, reason: "r"),
            .unsupported(path: "p", reason: "r"), .forbiddenGlobal(path: "p", offset: 1, name: "os.system"),
            .missingTensor(path: "p", name: "n"),
        ] {
            XCTAssertEqual(e.kind, .badInput, "\(e)")
        }
    }

    func testUnknownErrorsAreInternal() {
        struct Other: Error {}
        XCTAssertEqual(FailureKind.of(Other()), .internalError)
        XCTAssertEqual(FailureKind.of(CheckpointError.writeFailed(path: "p", reason: "r")), .writeFailed)
    }
}
