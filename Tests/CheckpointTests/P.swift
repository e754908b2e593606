import XCTest
final class PCheckpointTests: XCTestCase { func testNothing() {} }
