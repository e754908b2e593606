// `hcore store` and `hcore eval` over many subnetworks, end to end through the binary.
import Checkpoint
import Foundation
import XCTest

func scratch(_ name: String) -> String {
    let dir = NSTemporaryDirectory() + "hcore-cli-\(getpid())"
    try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    let p = dir + "/" + name
    try? FileManager.default.removeItem(atPath: p)
    return p
}

final class StoreAndEvalCLITests: XCTestCase {
    let minilm = repo + "/Tests/Fixtures/models/minilm-nli"
    let hans = repo + "/data/hans/heuristics_evaluation_set.txt.zst"

    func makeStore(_ name: String, n: Int) throws -> String { try makeTestStore(name, n: n) }
}

/// A store of `n` random subnetworks of minilm-nli (6×12 heads + 6 MLPs), with an activation set.
func makeTestStore(_ name: String, n: Int) throws -> String {
    let minilm = repo + "/Tests/Fixtures/models/minilm-nli"
    let hans = repo + "/data/hans/heuristics_evaluation_set.txt.zst"
    let store = scratch(name)
    XCTAssertEqual(try hcore(["store", "create", store, "--model", minilm]).code, 0)
    var rng = SystemRandomNumberGenerator()
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
        let exe = repo + "/.build/release/hcore"
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

final class CircuitsCLITests: XCTestCase {
    func testCoreFrequenciesEqualADirectCountAndComposeRuns() throws {
        let minilm = repo + "/Tests/Fixtures/models/minilm-nli"
        let store = try makeTestStore("circuits.hcs", n: 24)
        let exported = try JSONValue.parse(try hcore(["store", "export", store, "--json"]).out).arrayValue!
        XCTAssertEqual(exported.count, 24)
        let svgPath = scratch("core.svg")
        let core = try hcore(["circuits", "core", "--store", store, "--json", "--svg", svgPath])
        XCTAssertEqual(core.code, 0, core.err)
        let freq = try JSONValue.parse(core.out).get("keep_frequency")!
        for l in 0..<6 {
            for h in 0..<12 {
                let direct = exported.filter { $0.get("heads")!.arrayValue![l].arrayValue![h].intValue == 1 }.count
                XCTAssertEqual(freq.get("a\(l).h\(h)")!.doubleValue!, Double(direct) / 24, accuracy: 1e-12)
            }
            let direct = exported.filter { $0.get("mlps")!.arrayValue![l].intValue == 1 }.count
            XCTAssertEqual(freq.get("a\(l).mlp")!.doubleValue!, Double(direct) / 24, accuracy: 1e-12)
        }
        XCTAssert(try String(contentsOfFile: svgPath, encoding: .utf8).hasPrefix("<svg"))
        let compose = try hcore(["circuits", "compose", "--model", minilm, "--json"])
        XCTAssertEqual(compose.code, 0, compose.err)
        let doc = try JSONValue.parse(compose.out)
        XCTAssertEqual(doc.get("scores")?.arrayValue?.count, 2160)  // 12·12 pairs for each of the 15 layer pairs
        XCTAssertGreaterThan(doc.get("gaussian_baseline")?.get("q")?.doubleValue ?? 0, 0)
        // Every score is placed in the anti-causal null of its layer pair.
        let pct = doc.get("scores")!.arrayValue!.map {
            $0.get("null_percentile_qkv")!.arrayValue!.map { $0.doubleValue! }
        }
        XCTAssertTrue(pct.allSatisfy { $0.count == 3 && $0.allSatisfy { (0...1).contains($0) } })
    }
}

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

/// The reference's pickled activations where hcore takes activations: read, and refused by shape for a model of
/// another size (mnli.pkl is bert-base's; the fixtures' models are smaller), naming what it expected.
final class ReferenceActivationsCLITests: XCTestCase {
    func testPickleIsReadAndCheckedAgainstTheModel() throws {
        let pkl = repo + "/Tests/Fixtures/reference/activations/mnli.pkl"
        let minilm = repo + "/Tests/Fixtures/models/minilm-nli"
        let mask = scratch("pkl-mask.json")
        try
            "{\"heads\": [\((0..<6).map { _ in "[" + (0..<12).map { $0 % 2 == 0 ? "1" : "0" }.joined(separator: ", ") + "]" }.joined(separator: ", "))], \"mlps\": [1, 1, 1, 1, 1, 1]}"
            .write(toFile: mask, atomically: true, encoding: .utf8)
        let predict = try hcore(["predict", "--model", minilm, "--mask", mask, "--activations", pkl, "a", "b"])
        XCTAssertEqual(predict.code, 4, predict.err)
        XCTAssert(
            predict.err.contains("avg_head") && predict.err.contains("[6, 12, 32]")
                && predict.err.contains("[12, 12, 64]"), predict.err)
        let store = scratch("pkl.hcs")
        XCTAssertEqual(try hcore(["store", "create", store, "--model", minilm]).code, 0)
        let add = try hcore(["store", "add-activations", store, "--name", "mnli", "--file", pkl])
        XCTAssertEqual(add.code, 4, add.err)
        XCTAssert(add.err.contains("not a mean-activation set for a 6×12 model"), add.err)
    }
}

/// `store export --hf-folder`: a stored subnetwork as a smaller Hugging Face folder that `hcore predict` runs to the
/// masked model's logits (mean ablation with the store's activation set); a mask file without a store too.
final class HFExportCLITests: XCTestCase {
    func testExportPredictsAsTheMaskedModel() throws {
        let minilm = repo + "/Tests/Fixtures/models/minilm-nli"
        let store = try makeTestStore("export.hcs", n: 2)
        let out = scratch("export-s1")
        let acts = store + ".acts.safetensors"  // makeTestStore's set
        let r = try hcore(["store", "export", store, "--hf-folder", out, "--model", minilm, "--name", "s1"])
        XCTAssertEqual(r.code, 0, r.err)
        XCTAssert(r.out.contains("heads removed") && r.out.contains("GFLOP"), r.out)
        let show = try JSONValue.parse(try hcore(["store", "show", store, "s1"]).out)
        let mask = scratch("export-s1-mask.json")
        try JSONValue.object([("heads", show.get("heads")!), ("mlps", show.get("mlps")!)]).compact.write(
            toFile: mask, atomically: true, encoding: .utf8)
        let pairs = scratch("export-pairs.jsonl")
        try [
            "{\"text\": \"The doctor saw the lawyer.\", \"text_pair\": \"The lawyer saw the doctor.\"}",
            "{\"text\": \"If the actor ran, the judge waited.\", \"text_pair\": \"The actor ran.\"}",
        ].joined(separator: "\n").write(toFile: pairs, atomically: true, encoding: .utf8)
        let exported = try hcore(["predict", "--model", out, "--jsonl", pairs])
        let masked = try hcore(["predict", "--model", minilm, "--mask", mask, "--activations", acts, "--jsonl", pairs])
        XCTAssertEqual(exported.code, 0, exported.err)
        XCTAssertEqual(masked.code, 0, masked.err)
        func logits(_ s: String) throws -> [Double] {
            try s.split(separator: "\n").flatMap {
                try JSONValue.parse(String($0)).get("logits")!.arrayValue!.map { $0.doubleValue! }
            }
        }
        for (a, b) in zip(try logits(exported.out), try logits(masked.out)) { XCTAssertEqual(a, b, accuracy: 1e-5) }
        let fromMask = try hcore([
            "store", "export", "--hf-folder", scratch("export-mask"), "--model", minilm, "--mask", mask,
            "--zero-ablation",
        ])
        XCTAssertEqual(fromMask.code, 0, fromMask.err)
        let noName = try hcore(["store", "export", store, "--hf-folder", scratch("export-none"), "--model", minilm])
        XCTAssertEqual(noName.code, 2, noName.err)
    }
}
