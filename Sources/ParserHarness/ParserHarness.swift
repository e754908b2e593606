// Every parser of untrusted input behind one signature — bytes in, nothing out — for the fuzzers
// (Fuzz/) and for the tests that replay their saved corpus. Each reader is entered where it has the file's
// bytes (what its path-taking twin calls once the file is read), so the fuzzers spend no time in the file
// system; only the store, which maps and locks its file, gets a temporary file in /dev/shm (or $TMPDIR).
// Errors are the expected answer to garbage and are swallowed; a crash, a hang or an unbounded allocation is
// the bug being looked for.
import Checkpoint
import Eval
import Figures
import Foundation
import Model
import Prune
import Store
import Tokenizer

public enum ParserHarness {
    public static let targets: [String: @Sendable ([UInt8]) -> Void] = [
        "safetensors": { _ = try? SafetensorsFile(file: MappedFile(data: $0, name: "fuzz.safetensors")) },
        "zip": { _ = try? ZipArchive(file: MappedFile(data: $0, name: "fuzz.zip")) },
        "torch-bin": { _ = try? TorchCheckpoint(file: MappedFile(data: $0, name: "pytorch_model.bin")) },
        "pickle": { _ = try? Unpickler(bytes: $0, path: "fuzz.pkl").load() },
        "arrow": { _ = try? ArrowTable(bytes: $0, path: "fuzz.arrow") },
        "activations-pickle": { _ = try? referenceActivationsSafetensors(pickleBytes: $0, path: "activations.pkl") },
        "json": { _ = try? JSONValue.parse(String(decoding: $0, as: UTF8.self), path: "fuzz.json") },
        "config": { bytes in
            guard let j = (try? JSONSerialization.jsonObject(with: Data(bytes))) as? [String: Any] else { return }
            _ = try? BertConfig(json: j, path: "config.json")
        },
        "vocab": { _ = try? BertTokenizer.parse(vocabTxt: Data($0), path: "vocab.txt") },
        "tokenizer-json": { _ = try? BertTokenizer.parse(tokenizerJSON: Data($0), path: "tokenizer.json") },
        "store": { bytes in withFile(bytes, "fuzz.hcs") { _ = try? SubnetworkStore.open(path: $0) } },
        "tsv": { _ = try? Dataset.parse($0, path: "dev_matched.tsv", skipBadRows: true) },
        "hans": { _ = try? Dataset.parse($0, path: "heuristics_evaluation_set.txt", format: .hans, skipBadRows: true) },
        "jsonl": { _ = try? Dataset.parse($0, path: "fuzz.jsonl", skipBadRows: true) },
        "csv": { _ = try? Dataset.parse($0, path: "fuzz.csv", skipBadRows: true) },
        "mask": { _ = try? MaskValues.parse(Data($0), path: "mask.json") },
        "results": { bytes in
            guard let json = try? JSONValue.parse(String(decoding: bytes, as: UTF8.self), path: "r.json") else {
                return
            }
            if let file = try? ResultsFile.parse(json, path: "r.json") {
                _ = try? drawFigures(
                    [("r-sparsity-grid-acc.json", file), ("r-acc_over_ft.json", file)], options: .init())
            }
        },
        "eval-document": { bytes in
            guard let doc = try? EvalDocument.decode(bytes, path: "e.json") else { return }
            _ = try? EvalDocument.merge([("a.json", doc), ("b.json", doc)])
            for shape in HeuristicCoreShape.allCases { _ = try? heuristicCoreDocument([doc], shape: shape) }
        },
        "prune-checkpoint": { _ = try? PruneRuns.checkpoint($0, path: "s.hcs.prune-run.json", run: "run") },
        "prune-trace": { _ = try? PruneTrace.kept($0, resumeStep: 4, path: "trace.jsonl") },
        "subnetwork-jsonl": {
            _ = try? SubnetworkStore.subnetworks(
                jsonlBytes: $0, path: "subnetworks.jsonl", layout: StoreLayout(layers: 2, heads: 3), threshold: nil)
        },
    ]

    /// Runs `body` on a temporary file holding `bytes` (named `name`, so format detection by name works).
    static func withFile(_ bytes: [UInt8], _ name: String, _ body: (String) -> Void) {
        let folder = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()
        let path = folder + "/hcore-fuzz-\(getpid())-" + name
        guard FileManager.default.createFile(atPath: path, contents: Data(bytes)) else { return }
        body(path)
        unlink(path)
    }
}
