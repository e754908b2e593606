// Every parser of untrusted input behind one signature — bytes in, nothing out — for the fuzzers
// (Fuzz/) and for the tests that replay their saved corpus. Parsers that read paths get the bytes through
// a temporary file in /dev/shm (or $TMPDIR). Errors are the expected answer to garbage and are swallowed;
// a crash, a hang or an unbounded allocation is the bug being looked for.
import Checkpoint
import Eval
import Foundation
import Model
import Tokenizer

public enum ParserHarness {
    public static let targets: [String: @Sendable ([UInt8]) -> Void] = [
        "safetensors": { _ = try? SafetensorsFile(file: MappedFile(data: $0, name: "fuzz.safetensors")) },
        "zip": { _ = try? ZipArchive(file: MappedFile(data: $0, name: "fuzz.zip")) },
        "torch-bin": { _ = try? TorchCheckpoint(file: MappedFile(data: $0, name: "pytorch_model.bin")) },
        "pickle": { _ = try? Unpickler(bytes: $0, path: "fuzz.pkl").load() },
        "arrow": { _ = try? ArrowTable(bytes: $0, path: "fuzz.arrow") },
        "activations-pickle": { bytes in withFile(bytes, "activations.pkl") { _ = try? referenceActivationsSafetensors(pickle: $0) } },
        "json": { _ = try? JSONValue.parse(String(decoding: $0, as: UTF8.self), path: "fuzz.json") },
        "config": { bytes in
            guard let j = (try? JSONSerialization.jsonObject(with: Data(bytes))) as? [String: Any] else { return }
            _ = try? BertConfig(json: j, path: "config.json")
        },
        "vocab": { bytes in withFile(bytes, "vocab.txt") { _ = try? BertTokenizer.load(vocabTxt: $0) } },
        "tokenizer-json": { bytes in withFile(bytes, "tokenizer.json") { _ = try? BertTokenizer.load(tokenizerJSON: $0) } },
        "store": { bytes in withFile(bytes, "fuzz.hcs") { _ = try? SubnetworkStore.open(path: $0) } },
        "tsv": { bytes in withFile(bytes, "dev_matched.tsv") { _ = try? Dataset.load($0, skipBadRows: true) } },
        "hans": { bytes in withFile(bytes, "heuristics_evaluation_set.txt") { _ = try? Dataset.load($0, format: .hans, skipBadRows: true) } },
        "jsonl": { bytes in withFile(bytes, "fuzz.jsonl") { _ = try? Dataset.load($0, skipBadRows: true) } },
        "csv": { bytes in withFile(bytes, "fuzz.csv") { _ = try? Dataset.load($0, skipBadRows: true) } },
        "mask": { bytes in withFile(bytes, "mask.json") { _ = try? MaskValues.load(path: $0) } },
        "subnetwork-jsonl": { bytes in
            withFile(bytes, "subnetworks.jsonl") { _ = try? SubnetworkStore.subnetworks(jsonl: $0, layout: StoreLayout(layers: 2, heads: 3), threshold: nil) }
        },
    ]

    /// Runs `body` on a temporary file holding `bytes` (named `name`, so format detection by name works).
    static func withFile(_ bytes: [UInt8], _ name: String, _ body: (String) -> Void) {
        let folder = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()
        let dir = folder + "/hcore-fuzz-\(getpid())"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let path = dir + "/" + name
        guard FileManager.default.createFile(atPath: path, contents: Data(bytes)) else { return }
        body(path)
        unlink(path)
    }
}
