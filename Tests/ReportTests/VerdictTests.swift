// The report's verdict holds a run to the stated bar: at least 6 subnetworks within the in-domain margin
// whose OOD measure spans at least 15 points; anything less is "NOT shown", in words.
import Report
import XCTest

final class VerdictTests: XCTestCase {
    let measure = "mean accuracy on the paper's four plotted HANS subcases"

    func testShownOnlyWithEnoughSubnetworksAndSpread() {
        let six = [40.0, 45, 50, 52, 54, 55.5]
        let shown = ResearchReport.verdict(matchingMeasures: six, matchPoints: 3, measure: measure)
        XCTAssertTrue(shown.hasPrefix("The paper's phenomenon is shown: 6 subnetworks are within 3 points"), shown)
        XCTAssertTrue(shown.contains("ranges from 40.0 to 55.5 (15.5 points"), shown)
        // 14.9 points among six: not shown.
        let narrow = ResearchReport.verdict(
            matchingMeasures: [40.0, 45, 50, 52, 54, 54.9], matchPoints: 3, measure: measure)
        XCTAssertTrue(narrow.hasPrefix("The paper's phenomenon is NOT shown here: the 6 subnetworks"), narrow)
        XCTAssertTrue(narrow.contains("span 14.9 points"), narrow)
        // 30 points among five: not shown either.
        let few = ResearchReport.verdict(matchingMeasures: [20.0, 30, 40, 45, 50], matchPoints: 3, measure: measure)
        XCTAssertTrue(few.hasPrefix("The paper's phenomenon is NOT shown here: the 5 subnetworks"), few)
        for v in [shown, narrow, few] { XCTAssertTrue(v.contains("≥ 6 such subnetworks spanning ≥ 15 points"), v) }
    }

    func testFewerThanTwoMatchingSaysWhy() {
        for xs in [[], [50.0]] {
            let v = ResearchReport.verdict(matchingMeasures: xs, matchPoints: 3, measure: measure)
            XCTAssertTrue(v.contains("fewer than two subnetworks are within 3 points"), v)
        }
    }
}
