// Where the demo finds its pretrained MiniLM-L6 when no --model is given: a clone (the current folder's, or the one
// hcore was built in), then the user's cache, where a packaged hcore run outside any clone finds it.
import Foundation
import TestSupport
import XCTest

@testable import Study

final class PretrainedLookupTests: XCTestCase {
    func testTheUserCacheIsSearchedAfterTheClones() throws {
        let root = NSTemporaryDirectory() + "hcore-lookup-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: root) }
        let cached = root + "/cache/hcore/minilm-nli"
        try FileManager.default.createDirectory(atPath: cached, withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: cached + "/model.safetensors", contents: Data())
        let elsewhere = root + "/empty"
        try FileManager.default.createDirectory(atPath: elsewhere, withIntermediateDirectories: true)
        let packaged = "/opt/hcore/bin/hcore"  // no clone around it
        func lookup(_ env: [String: String], from folder: String) -> String? {
            DemoStudy.defaultPretrained(executable: packaged, environment: env, currentDirectory: folder)
        }
        XCTAssertEqual(lookup(["XDG_CACHE_HOME": root + "/cache"], from: elsewhere), cached)
        // A relative XDG_CACHE_HOME is ignored (the XDG rule): HOME/.cache is searched, and holds nothing yet.
        XCTAssertNil(lookup(["HOME": root, "XDG_CACHE_HOME": "relative/ignored"], from: elsewhere))
        try FileManager.default.moveItem(atPath: root + "/cache", toPath: root + "/.cache")
        XCTAssertEqual(lookup(["HOME": root], from: elsewhere), root + "/.cache/hcore/minilm-nli")
        XCTAssertNil(lookup([:], from: elsewhere))
        // A clone in the current folder comes first.
        let clone = repositoryRoot.path
        if FileManager.default.fileExists(atPath: clone + "/Tests/Fixtures/models/minilm-nli/model.safetensors") {
            XCTAssertEqual(
                lookup(["HOME": root], from: clone), clone + "/Tests/Fixtures/models/minilm-nli")
        }
    }
}
