import XCTest
final class PTokenizerTests: XCTestCase { func testNothing() {} }
