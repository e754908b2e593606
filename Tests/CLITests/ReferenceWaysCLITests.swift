// The reference's own kinds of input evaluated its way, each a case that once came back plausible, exit 0 and
// wrong, or differed from the reference without a word: a pruned run folder given as the model, the deterministic
// soft rule by default, hans-cases with its `og` folder and per-case limits, run_glue's spellings for finetune,
// files under the umask, --max-length at the model's positions, flags that cannot apply, messages naming a path once.
import Checkpoint
import Foundation
import TestSupport
import XCTest

final class ReferenceWaysCLITests: XCTestCase {
    let tiny = repo + "/Tests/Fixtures/models/tiny-bert"
    let minilm = repo + "/Tests/Fixtures/models/minilm-nli"

    /// tiny-bert as a pruned run of the reference: its weights plus log_alpha_heads / log_alpha_mlp, some
    /// strongly pruned, some in between (soft values), in a folder named as prune-all-mnli.sh names its runs.
    func referenceRun() throws -> String {
        let run = scratch("mnli-seed7mean-50")
        try FileManager.default.createDirectory(atPath: run, withIntermediateDirectories: true)
        for f in ["config.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"] {
            try FileManager.default.copyItem(atPath: tiny + "/" + f, toPath: run + "/" + f)
        }
        let source = try SafetensorsFile(path: tiny + "/model.safetensors")
        var w = SafetensorsWriter()
        w.metadata = ["format": "pt"]
        for name in source.names { w.add(name, shape: source.info(name)!.shape, try source.floats(name)) }
        w.add("bert.encoder.layer.0.attention.self.log_alpha_heads", shape: [4], [6, -6, 1.5, 6])
        w.add("bert.encoder.layer.1.attention.self.log_alpha_heads", shape: [4], [0.5, 6, -6, 6])
        w.add("bert.encoder.layer.0.output.log_alpha_mlp", shape: [1], [6])
        w.add("bert.encoder.layer.1.output.log_alpha_mlp", shape: [1], [-6])
        try w.write(to: run + "/model.safetensors")
        return run
    }

    /// Pairs with tiny-bert's labels.
    func pairs() throws -> String {
        let path = scratch("pairs.jsonl")
        let lines = (0..<24).map { i in
            #"{"text": "the doctor number \#(i) saw the lawyer", "text_pair": "the lawyer saw \#(i % 5) doctors", "label": "LABEL_\#(i % 2)"}"#
        }
        try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func result(_ out: String) throws -> [String: Any] {
        let doc = try JSONSerialization.jsonObject(with: Data(out.utf8)) as! [String: Any]
        return (doc["results"] as! [[String: Any]])[0]
    }

    /// A run folder given as --model is its subnetwork by the reference's rule (soft), named, recorded and said;
    /// the same metrics as importing it into a store and evaluating the store; --full is the unpruned weights.
    func testPrunedRunFolderIsEvaluatedAsItsSubnetwork() throws {
        let (run, data) = (try referenceRun(), try pairs())
        func logits(_ file: String) throws -> [[Double]] {
            try String(contentsOfFile: file, encoding: .utf8).split(separator: "\n").map {
                (try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any])["logits"] as! [Double]
            }
        }
        let (directLogits, storeLogits, fullLogits) = (
            scratch("direct.jsonl"), scratch("store.jsonl"), scratch("full.jsonl")
        )
        let direct = try hcore([
            "eval", "--model", run, "--data", data, "--zero-ablation", "--predictions", directLogits,
        ])
        XCTAssertEqual(direct.code, 0, direct.err)
        XCTAssert(direct.err.contains("carries log α"), direct.err)
        let r = try result(direct.out)
        XCTAssertEqual(r["subnetwork"] as? String, "mnli-seed7mean-50")
        XCTAssertEqual(r["mask_rule"] as? String, "deterministic (soft)")
        XCTAssertGreaterThan(r["sparsity"] as! Double, 0.2)
        let store = scratch("run.hcs")
        XCTAssertEqual(try hcore(["store", "create", store, "--model", run]).code, 0)
        let imported = try hcore(["store", "import-heuristic-core", store, run])
        XCTAssertEqual(imported.code, 0, imported.err)
        let viaStore = try hcore([
            "eval", "--model", run, "--store", store, "--data", data, "--zero-ablation", "--predictions", storeLogits,
        ])
        XCTAssertEqual(viaStore.code, 0, viaStore.err)
        let s = try result(viaStore.out)
        XCTAssertEqual(s["mask_rule"] as? String, "deterministic (soft)")
        XCTAssertEqual(try logits(storeLogits), try logits(directLogits), "the run evaluated directly and after import")
        let full = try hcore(["eval", "--model", run, "--data", data, "--full", "--predictions", fullLogits])
        XCTAssertEqual(try result(full.out)["subnetwork"] as? String, "full", full.err)
        XCTAssertNotEqual(try logits(fullLogits), try logits(directLogits), "the subnetwork is not the full model")
        let bare = try hcore(["eval", "--model", run, "--data", data])
        XCTAssertEqual(bare.code, 2, "a run needs its ablation named: \(bare.err)")
        XCTAssert(bare.err.contains("--activations") && bare.err.contains("--full"), bare.err)
        let binary = try hcore(["eval", "--model", run, "--data", data, "--zero-ablation", "--threshold", "0.5"])
        XCTAssertEqual(try result(binary.out)["mask_rule"] as? String, "deterministic, threshold 0.5", binary.err)
    }

    /// hans-cases: the 30 case folders, not the `og` folder beside them; --max-examples-per-case caps each case.
    func testHansCasesSkipOgAndCapEachCase() throws {
        let cases = scratch("hans-cases")
        try FileManager.default.createDirectory(atPath: cases, withIntermediateDirectories: true)
        let fixture = repo + "/Tests/Fixtures/reference/datasets/hans-cases"
        for c in ["constituent_cn_embedded_under_if", "lexical_overlap_ln_subject-object_swap"] {
            try FileManager.default.copyItem(atPath: fixture + "/" + c, toPath: cases + "/" + c)
        }
        try FileManager.default.copyItem(
            atPath: fixture + "/constituent_cn_embedded_under_if", toPath: cases + "/og")
        func count(_ extra: [String]) throws -> (Int, [String: Int]) {
            let r = try hcore(["eval", "--model", minilm, "--data", cases] + extra)
            XCTAssertEqual(r.code, 0, r.err)
            let doc = try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as! [String: Any]
            let m = ((doc["results"] as! [[String: Any]])[0]["metrics"] as! [String: [String: Any]]).values.first!
            let subcases = (m["hans_subcases"] as! [String: [String: Any]]).mapValues { $0["count"] as! Int }
            return (m["count"] as! Int, subcases)
        }
        let (all, subcases) = try count([])
        XCTAssertEqual(all, subcases.values.reduce(0, +))
        XCTAssertEqual(subcases.count, 2, "og is not read as a third case: \(subcases)")
        let (capped, perCase) = try count(["--max-examples-per-case", "5"])
        XCTAssertEqual(capped, 10)
        XCTAssertEqual(Set(perCase.values), [5])
        XCTAssertEqual(try hcore(["eval", "--model", minilm, "--data", cases + "/og"]).code, 0, "og alone when asked")
    }

    /// run_glue's underscore spellings for finetune, renamed where hcore's names differ.
    func testFinetuneTakesRunGlueSpellings() throws {
        let out = scratch("ft-underscores")
        let r = try hcore([
            "finetune", "--config", "tiny", "--train_file", try pairs(), "--output_dir", out, "--max_steps", "2",
            "--per_device_train_batch_size", "8", "--learning_rate", "1e-3", "--do_train", "--seed", "3",
        ])
        XCTAssertEqual(r.code, 0, r.err)
        XCTAssert(FileManager.default.fileExists(atPath: out + "/model.safetensors"))
        XCTAssert(r.err.contains("--do_train is the reference's PyTorch machinery"), r.err)
        // As the Trainer does, a non-empty output folder is refused unless --overwrite_output_dir.
        let again = [
            "finetune", "--config", "tiny", "--train_file", try pairs(), "--output_dir", out, "--max_steps", "2",
        ]
        let refused = try hcore(again)
        XCTAssertEqual(refused.code, 2, refused.err)
        XCTAssert(refused.err.contains("--overwrite-output-dir is needed to write into"), refused.err)
        XCTAssertEqual(try hcore(again + ["--overwrite_output_dir"]).code, 0)
        let task = try hcore(["finetune", "--config", "tiny", "--task_name", "MNLI", "--out", out, "--train", "x"])
        XCTAssertEqual(task.code, 2, task.err)
        XCTAssert(task.err.contains("--train FILE"), task.err)
    }

    /// Written files follow the umask (0666 & ~umask), stores and outputs alike.
    func testFilesFollowTheUmask() throws {
        let store = scratch("umask.hcs")
        let svg = scratch("umask.svg")
        let script =
            "umask 022 && \(try hcoreExecutable()) store create \(store) --model \(tiny) && \(try hcoreExecutable()) circuits attention --model \(tiny) a b --svg \(svg) --head a0.h0"
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", script]
        try p.run()
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0)
        for file in [store, svg] {
            let mode = (try FileManager.default.attributesOfItem(atPath: file)[.posixPermissions] as! NSNumber).intValue
            XCTAssertEqual(mode, 0o644, file)
        }
    }

    /// --max-length defaults to the model's positions when it has fewer than 128; a longer pair is truncated, not
    /// refused.
    func testMaxLengthDefaultsToTheModelsPositions() throws {
        let long = String(repeating: "word ", count: 80)
        let r = try hcore(["predict", "--model", tiny, long, "another pair"])
        XCTAssertEqual(r.code, 0, r.err)
        let t = try hcore(["tokenize", "--model", tiny, long, "another pair"])
        let ids = (try JSONSerialization.jsonObject(with: Data(t.out.utf8)) as! [String: Any])["input_ids"] as! [Int]
        XCTAssertEqual(ids.count, 64)
    }

    /// Flags that cannot apply are refused, not ignored; messages name a path once and say what to do.
    func testInapplicableFlagsAndMessages() throws {
        let shard = try hcore(["eval", "--checkpoints", tiny, "--data", "x", "--shard", "1/2"])
        XCTAssertEqual(shard.code, 2, shard.err)
        XCTAssert(shard.err.contains("--shard"), shard.err)
        let store = scratch("unpruned.hcs")
        XCTAssertEqual(try hcore(["store", "create", store, "--model", tiny]).code, 0)
        let unpruned = try hcore(["store", "import-heuristic-core", store, tiny])
        XCTAssertEqual(unpruned.code, 3, unpruned.err)
        XCTAssert(unpruned.err.contains("unpruned BERT checkpoint"), unpruned.err)
        let missing = try hcore(["eval", "--model", tiny, "--data", "/no/such/file.tsv"])
        XCTAssertEqual(missing.code, 3, missing.err)
        XCTAssertEqual(missing.err.components(separatedBy: "/no/such/file.tsv").count - 1, 1, missing.err)
    }
}
