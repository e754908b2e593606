// `hcore store` and `hcore eval` over many subnetworks, end to end through the binary.
import Checkpoint
import Foundation
import TestSupport
import XCTest

func scratch(_ name: String) -> String {
    let dir = NSTemporaryDirectory() + "hcore-cli-\(getpid())"
    try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    let p = dir + "/" + name
    try? FileManager.default.removeItem(atPath: p)
    return p
}

/// A store of `n` random subnetworks of minilm-nli (6×12 heads + 6 MLPs), with an activation set.
func makeTestStore(_ name: String, n: Int) throws -> String {
    let minilm = repo + "/Tests/Fixtures/models/minilm-nli"
    let hans = repo + "/data/hans/heuristics_evaluation_set.txt.zst"
    let store = scratch(name)
    XCTAssertEqual(try hcore(["store", "create", store, "--model", minilm]).code, 0)
    var rng = SeededRNG(UInt64(n))
    var lines: [String] = []
    for i in 0..<n {
        let heads = (0..<6).map { _ in (0..<12).map { _ in Int.random(in: 0...9, using: &rng) < 6 ? 1 : 0 } }
        let mlps = (0..<6).map { _ in Int.random(in: 0...9, using: &rng) < 7 ? 1 : 0 }
        let la = (heads.joined() + mlps).map { $0 == 1 ? 3.0 : -3.0 }
        let obj: [String: Any] = [
            "name": "s\(i)", "heads": heads, "mlps": mlps, "log_alpha": la,
            "meta": ["seed": 40 + i, "tags": i % 2 == 0 ? ["even"] : []],
        ]
        lines.append(String(decoding: try JSONSerialization.data(withJSONObject: obj), as: UTF8.self))
    }
    let jsonl = scratch(name + ".jsonl")
    try (lines.joined(separator: "\n") + "\n").write(toFile: jsonl, atomically: true, encoding: .utf8)
    let add = try hcore(["store", "add", store, "--jsonl", jsonl])
    XCTAssertEqual(add.code, 0, add.err)
    let acts = scratch(name + ".acts.safetensors")
    XCTAssertEqual(
        try hcore(["activations", "--model", minilm, "--data", hans, "--max-examples", "200", "--out", acts]).code, 0)
    XCTAssertEqual(try hcore(["store", "add-activations", store, "--name", "hans200", "--file", acts]).code, 0)
    return store
}

extension StoreAndEvalCLITests {

    func metricsOnly(_ json: String) throws -> [String] {
        let doc = try JSONValue.parse(json)
        return (doc.get("results")?.arrayValue ?? []).map { r in
            "\(r.get("subnetwork")!.compact) \(r.get("metrics")!.compact)"
        }
    }

    func testShardsMergeToTheSingleRun() throws {
        let store = try makeStore("shards.hcs", n: 20)
        let common = [
            "eval", "--model", minilm, "--store", store, "--data", hans, "--max-examples", "120", "--include-full",
        ]
        let single = try hcore(common)
        XCTAssertEqual(single.code, 0, single.err)
        XCTAssertEqual(try metricsOnly(single.out).count, 21)
        // Three shards as separate processes, running at the same time.
        let exe = try hcoreExecutable()
        let running: [(Process, Pipe)] = try (1...3).map { i in
            let p = Process()
            let o = Pipe()
            p.executableURL = URL(fileURLWithPath: exe)
            p.arguments = common + ["--shard", "\(i)/3"]
            p.standardOutput = o
            p.standardError = FileHandle.nullDevice
            try p.run()
            return (p, o)
        }
        let outputs = running.map { (p, o) -> String in
            let d = o.fileHandleForReading.readDataToEndOfFile()
            p.waitUntilExit()
            XCTAssertEqual(p.terminationStatus, 0)
            return String(decoding: d, as: UTF8.self)
        }
        var files: [String] = []
        for (i, o) in outputs.enumerated() {
            let f = scratch("part\(i + 1).json")
            try o.write(toFile: f, atomically: true, encoding: .utf8)
            files.append(f)
            XCTAssertGreaterThan(try metricsOnly(o).count, 0)
        }
        let merged = try hcore(["eval", "merge"] + files)
        XCTAssertEqual(merged.code, 0, merged.err)
        XCTAssertEqual(try metricsOnly(merged.out), try metricsOnly(single.out))
        // Two of three shards, or a shard of another truncation, are not one evaluation.
        let partial = try hcore(["eval", "merge"] + files.prefix(2))
        XCTAssertEqual(partial.code, 3, partial.err)
        XCTAssert(partial.err.contains("hold 2 of 3 shards; missing 3/3"), partial.err)
        let other = scratch("part3-other.json")
        try outputs[2].replacingOccurrences(of: "\"max_length\" : 128", with: "\"max_length\" : 64")
            .write(toFile: other, atomically: true, encoding: .utf8)
        let contradicting = try hcore(["eval", "merge", files[0], files[1], other])
        XCTAssertEqual(contradicting.code, 4, contradicting.err)
        XCTAssert(contradicting.err.contains("has max length 64"), contradicting.err)
    }

    func testEvalPredictionsEqualTransformersOnGoldenHANSPairs() throws {
        let j =
            try JSONSerialization.jsonObject(
                with: Data(contentsOf: URL(fileURLWithPath: repo + "/Tests/Fixtures/golden/minilm-nli_outputs.json")))
            as! [String: Any]
        let examples = (j["examples"] as! [[String: Any]]).filter {
            ($0["source"] as? String) == "heuristics_evaluation_set.txt"
        }
        XCTAssertEqual(examples.count, 64)
        let lines = try examples.map { ex -> String in
            let o: [String: Any] = [
                "text": ex["text"] as! String, "text_pair": ex["text_pair"] as! String, "label": "entailment",
            ]
            return String(decoding: try JSONSerialization.data(withJSONObject: o), as: UTF8.self)
        }
        let input = scratch("golden-hans.jsonl")
        let preds = scratch("golden-hans-preds.jsonl")
        try (lines.joined(separator: "\n") + "\n").write(toFile: input, atomically: true, encoding: .utf8)
        let r = try hcore(["eval", "--model", minilm, "--data", input, "--predictions", preds, "--batch-size", "7"])
        XCTAssertEqual(r.code, 0, r.err)
        let golden = try goldenLogitsFromFixture()
        let names = ["entailment", "neutral", "contradiction"]
        let out = try String(contentsOfFile: preds, encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(out.count, 64)
        for (k, line) in out.enumerated() {
            let o = try JSONValue.parse(String(line))
            let i = examples[k]["index"] as! Int
            let want = (0..<3).max { golden[i * 3 + $0] < golden[i * 3 + $1] }!
            XCTAssertEqual(o.get("pred")?.stringValue, names[want], "golden example \(i)")
        }
    }

    func testStoreCommandsAndHeuristicCoreImport() throws {
        let store = try makeStore("cmds.hcs", n: 6)
        let ls = try hcore(["store", "ls", store, "--json", "--tag", "even"])
        XCTAssertEqual(ls.code, 0, ls.err)
        XCTAssertEqual(try JSONValue.parse(ls.out).arrayValue?.count, 3)
        // A pruned checkpoint as the reference code saves it: log-alphas next to the weights.
        var w = TorchCheckpointWriter()
        var expectedHeads: [[Int]] = []
        for l in 0..<6 {
            let la: [Float] = (0..<12).map { h in (h + l) % 3 == 0 ? -6 : 6 }
            expectedHeads.append(la.map { $0 > 0 ? 1 : 0 })
            w.add("bert.encoder.layer.\(l).attention.self.log_alpha_heads", shape: [12], la)
            w.add("bert.encoder.layer.\(l).output.log_alpha_mlp", shape: [1], [l == 2 ? -6 : 6])
        }
        // Folders named as the reference's prune-all-mnli.sh names them; a checkpoint folder inside one.
        let run = scratch("pruned/mnli-seed42mean-50")
        let checkpoint = run + "/checkpoint-512"
        try FileManager.default.createDirectory(atPath: checkpoint, withIntermediateDirectories: true)
        try w.write(to: run + "/pytorch_model.bin")
        try w.write(to: checkpoint + "/pytorch_model.bin")
        // Reached through a link, a run folder keeps the link's name (and what it says), not its target's.
        let target = scratch("pruned-target/xq7")
        try? FileManager.default.removeItem(atPath: target)
        try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true)
        try w.write(to: target + "/pytorch_model.bin")
        let link = scratch("pruned-links/qqp-seed3zero-30")
        try? FileManager.default.removeItem(atPath: link)
        try FileManager.default.createDirectory(
            atPath: scratch("pruned-links"), withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: target)
        let linked = try hcore(["store", "import-heuristic-core", store, link])
        XCTAssertEqual(linked.code, 0, linked.err)
        let linkedMeta = try JSONValue.parse(try hcore(["store", "show", store, "qqp-seed3zero-30"]).out).get("meta")
        XCTAssertEqual(linkedMeta?.get("seed")?.intValue, 3)
        XCTAssertEqual(linkedMeta?.get("task")?.stringValue, "qqp")
        XCTAssertEqual(try hcore(["store", "rm", store, "qqp-seed3zero-30"]).code, 0)
        let imp = try hcore(["store", "import-heuristic-core", store, run])
        XCTAssertEqual(imp.code, 0, imp.err)
        let impStep = try hcore([
            "store", "import-heuristic-core", store, checkpoint, "--meta", "seed=7", "--meta", "note=rerun",
        ])
        XCTAssertEqual(impStep.code, 0, impStep.err)
        let show = try hcore(["store", "show", store, "mnli-seed42mean-50"])
        XCTAssertEqual(show.code, 0, show.err)
        let doc = try JSONValue.parse(show.out)
        let meta = doc.get("meta")
        XCTAssertEqual(meta?.get("seed")?.intValue, 42)
        XCTAssertEqual(meta?.get("target_sparsity")?.doubleValue, 0.5)
        XCTAssertEqual(meta?.get("task")?.stringValue, "mnli")
        XCTAssertEqual(meta?.get("ablation")?.stringValue, "mean")
        let stepMeta = try JSONValue.parse(
            try hcore(["store", "show", store, "mnli-seed42mean-50/checkpoint-512"]).out
        ).get("meta")
        XCTAssertEqual(stepMeta?.get("step")?.intValue, 512)
        XCTAssertEqual(stepMeta?.get("seed")?.intValue, 7)  // --meta overrides the folder name
        XCTAssertEqual(stepMeta?.get("note")?.stringValue, "rerun")
        XCTAssertEqual(stepMeta?.get("target_sparsity")?.doubleValue, 0.5)
        XCTAssertEqual(doc.get("heads")?.arrayValue?.map { $0.arrayValue!.map { $0.intValue! } }, expectedHeads)
        XCTAssertEqual(doc.get("mlps")?.arrayValue?.map { $0.intValue! }, [1, 1, 0, 1, 1, 1])
        // Export for Python: a valid .npy header and shape.
        let dir = scratch("npy")
        XCTAssertEqual(try hcore(["store", "export", store, "--npy", dir]).code, 0)
        let npy = try Data(contentsOf: URL(fileURLWithPath: dir + "/masks.npy"))
        XCTAssertEqual(Array(npy.prefix(6)), [0x93] + Array("NUMPY".utf8))
        XCTAssert(String(decoding: npy.prefix(128), as: UTF8.self).contains("'shape': (8, 78)"))
        // Removing, compacting and verifying.
        XCTAssertEqual(try hcore(["store", "rm", store, "s0"]).code, 0)
        XCTAssertEqual(try hcore(["store", "compact", store]).code, 0)
        let v = try hcore(["store", "verify", store, "--model", minilm])
        XCTAssertEqual(v.code, 0, v.err)
        XCTAssert(v.out.contains("ok: 7 subnetworks, 1 activation sets"), v.out)
    }

    func testStoreOfAnotherModelIsRefused() throws {
        let store = try makeStore("foreign.hcs", n: 2)
        let r = try hcore([
            "eval", "--model", repo + "/Tests/Fixtures/models/tiny-bert", "--store", store, "--data", hans,
            "--max-examples", "5",
        ])
        XCTAssertEqual(r.code, 4, r.err)
        XCTAssert(r.err.contains("belongs to model"), r.err)
        let v = try hcore(["store", "verify", store, "--model", repo + "/Tests/Fixtures/models/tiny-bert"])
        XCTAssertEqual(v.code, 4)
    }
}
