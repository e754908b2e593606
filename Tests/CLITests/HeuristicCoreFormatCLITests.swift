// `eval --format heuristic-core`: the reference's flat table — row 0 the full model ("original", sparsity 0) even
import Checkpoint
import Foundation
import XCTest

/// `eval --format heuristic-core`: the reference's flat table — row 0 the full model ("original", sparsity 0) even
/// when only a mask is given, HANS subcase keys with "-" for "/", paws-qqp and paws-qqp_0 (accuracy on the label-0
/// rows, checked against the per-example predictions), in-domain sets named by --id-name.
final class HeuristicCoreFormatCLITests: XCTestCase {
    func testTheReferencesFlatTable() throws {
        let tiny = repo + "/Tests/Fixtures/models/tiny-bert"
        let hansLines = String(
            decoding: try readDataFile(repo + "/data/hans/heuristics_evaluation_set.txt.zst"), as: UTF8.self
        ).split(separator: "\n")
        let wanted = ["ln_subject/object_swap", "sn_NP/S", "ce_adverb"]
        let picked =
            [hansLines[0]]
            + wanted.flatMap { w in
                hansLines.filter { $0.split(separator: "\t").dropFirst(9).first.map(String.init) == w }.prefix(6)
            }
        let hansFile = scratch("hc-hans.txt")
        let pawsFile = scratch("hc-paws.tsv")
        let idFile = scratch("hc-dev.jsonl")
        try (picked.joined(separator: "\n") + "\n").write(toFile: hansFile, atomically: true, encoding: .utf8)
        let paws = String(decoding: try readDataFile(repo + "/data/paws-qqp/dev_and_test.tsv.zst"), as: UTF8.self)
            .split(separator: "\n").prefix(41)
        try (paws.joined(separator: "\n") + "\n").write(toFile: pawsFile, atomically: true, encoding: .utf8)
        try
            "{\"text\": \"a b\", \"text_pair\": \"a\", \"label\": \"entailment\"}\n{\"text\": \"c\", \"text_pair\": \"d\", \"label\": \"neutral\"}\n"
            .write(toFile: idFile, atomically: true, encoding: .utf8)
        // HANS and an in-domain set on the NLI model, with a mask: the full model's row comes first anyway.
        let nliMask = scratch("hc-nli-mask.json")
        try
            "{\"heads\": [\((0..<6).map { l in "[" + (0..<12).map { ($0 + l) % 3 == 0 ? "0" : "1" }.joined(separator: ", ") + "]" }.joined(separator: ", "))], \"mlps\": [1, 1, 1, 1, 1, 1]}"
            .write(toFile: nliMask, atomically: true, encoding: .utf8)
        let nli = try hcore([
            "eval", "--model", repo + "/Tests/Fixtures/models/minilm-nli", "--mask", nliMask, "--zero-ablation",
            "--data", idFile, "--data", hansFile,
            "--format", "heuristic-core", "--id-name", "mnli-matched",
        ])
        XCTAssertEqual(nli.code, 0, nli.err)
        let table = try JSONValue.parse(nli.out)
        XCTAssertEqual(
            table.objectValue?.map(\.0),
            [
                "seed", "sparsity", "mnli-matched", "constituent_ce_adverb", "lexical_overlap_ln_subject-object_swap",
                "subsequence_sn_NP-S",
            ])
        XCTAssertEqual(table.get("seed")?.arrayValue?.map { $0.stringValue ?? "" }.first, "original")
        XCTAssertEqual(table.get("sparsity")?.arrayValue?.first?.doubleValue, 0)
        XCTAssertEqual(table.get("seed")?.arrayValue?.count, 2)
        // PAWS on the 2-label model: paws-qqp and paws-qqp_0, the latter checked against the per-example predictions.
        let mask = scratch("hc-mask.json")
        try "{\"heads\": [[1, 0, 1, 1], [0, 1, 1, 0]], \"mlps\": [1, 1]}".write(
            toFile: mask, atomically: true, encoding: .utf8)
        let predictions = scratch("hc-predictions.jsonl")
        let r = try hcore([
            "eval", "--model", tiny, "--mask", mask, "--zero-ablation", "--data", pawsFile, "--max-length", "64",
            "--format", "heuristic-core", "--predictions", predictions,
        ])
        XCTAssertEqual(r.code, 0, r.err)
        let doc = try JSONValue.parse(r.out)
        XCTAssertEqual(doc.objectValue?.map(\.0), ["seed", "sparsity", "paws-qqp", "paws-qqp_0"])
        let rows = try String(contentsOfFile: predictions, encoding: .utf8).split(separator: "\n").map {
            try JSONValue.parse(String($0))
        }
        for (i, name) in ["full", mask].enumerated() {
            let zero = rows.filter {
                $0.get("subnetwork")?.stringValue == name && $0.get("label")?.compact.contains("0") == true
            }
            XCTAssertEqual(zero.count, paws.dropFirst().filter { $0.hasSuffix("\t0") }.count, name)
            // Gold "0" is class 0 of a 2-label model; the prediction is the logits' argmax.
            func predicted(_ row: JSONValue) -> Int {
                let z = row.get("logits")!.arrayValue!.map { $0.doubleValue! }
                return z[1] > z[0] ? 1 : 0
            }
            let right = zero.filter { predicted($0) == 0 }.count
            XCTAssertEqual(
                doc.get("paws-qqp_0")?.arrayValue?[i].doubleValue ?? -1, Double(right) / Double(zero.count),
                accuracy: 1e-4, name)
            let all = rows.filter { $0.get("subnetwork")?.stringValue == name }
            let allRight = all.filter { predicted($0) == ($0.get("label")?.compact.contains("1") == true ? 1 : 0) }
                .count
            XCTAssertEqual(
                doc.get("paws-qqp")?.arrayValue?[i].doubleValue ?? -1, Double(allRight) / Double(all.count),
                accuracy: 1e-4, name)
        }
    }
}
