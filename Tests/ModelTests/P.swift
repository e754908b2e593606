import XCTest
final class PModelTests: XCTestCase { func testNothing() {} }
