// config.json: BERT's defaults and labels, and the settings hcore does not support refused by name.
import Checkpoint
import Foundation
import TestSupport
import XCTest

final class ConfigTests: XCTestCase {
    func config(_ json: String) throws -> BertConfig {
        try BertConfig(json: JSONSerialization.jsonObject(with: Data(json.utf8)) as! [String: Any], path: "config.json")
    }

    let base = #""vocab_size":100,"hidden_size":8,"num_hidden_layers":1,"num_attention_heads":2,"intermediate_size":16"#

    func testDefaultsAndLabels() throws {
        let c = try config("{\(base),\"id2label\":{\"1\":\"yes\",\"0\":\"no\"}}")
        XCTAssertEqual(c.labels, ["no", "yes"])
        XCTAssertEqual(c.layerNormEps, 1e-12)
        XCTAssertEqual(c.headDim, 4)
        XCTAssertEqual(try config("{\(base),\"num_labels\":3}").labels, ["LABEL_0", "LABEL_1", "LABEL_2"])
        // "00" is label 0 spelt again (label 1 would be nameless); an empty name is no name
        for bad in [#"{"0": "a", "00": "b"}"#, #"{"0": "", "1": "b"}"#] {
            XCTAssertThrowsError(try config("{\(base),\"id2label\":\(bad)}"), bad)
        }
    }

    func testUnsupportedSettingsAreRefused() {
        XCTAssertThrowsError(try config("{\(base),\"hidden_act\":\"relu\"}")) {
            XCTAssert("\($0)".contains("hidden_act 'relu'"))
        }
        XCTAssertThrowsError(try config("{\(base),\"position_embedding_type\":\"relative_key\"}")) {
            XCTAssert("\($0)".contains("relative_key"))
        }
        XCTAssertThrowsError(try config(#"{"vocab_size":100}"#)) { XCTAssert("\($0)".contains("hidden_size")) }
        XCTAssertThrowsError(try config("{\(base),\"model_type\":\"gpt2\"}"))
        XCTAssertThrowsError(
            try config(
                #"{"vocab_size":100,"hidden_size":10,"num_hidden_layers":1,"num_attention_heads":3,"intermediate_size":16}"#
            ))
    }
}
