// What researchers look at first: each head's attention pattern on a pair. One pair's patterns as JSON
// ([layer][head][query][key] with its tokens), as .npy (float32 [layers, heads, T, T]), and one head's
// pattern as an SVG grid labelled with the tokens.
import Checkpoint
import Failures
import Foundation
import Kernels
import Model
import Tokenizer

public struct AttentionPatterns: Sendable {
    public var tokens: [String]
    public var layers: Int, heads: Int
    /// [layer][head·T·T + query·T + key]
    public var probabilities: [[Float]]
    public var length: Int { tokens.count }

    /// Sequence `s` of a batch out of `BertModel.attentionPatterns`.
    public init(tokens: [String], sequence s: Int, of batch: TokenBatch, patterns: [[Float]], heads: Int) {
        let base = attentionProbOffsets(offsets: batch.offsets, heads: heads)
        (self.tokens, self.layers, self.heads) = (tokens, patterns.count, heads)
        probabilities = patterns.map { Array($0[base[s]..<base[s + 1]]) }
    }

    public func weight(layer l: Int, head h: Int, query i: Int, key j: Int) -> Float {
        probabilities[l][(h * length + i) * length + j]
    }

    public var json: JSONValue {
        let T = length
        return .object([
            ("tokens", .array(tokens.map { .string($0) })),
            (
                "attentions",
                .array(
                    (0..<layers).map { l in
                        .array(
                            (0..<heads).map { h in
                                .array(
                                    (0..<T).map { i in
                                        .floats(Array(probabilities[l][((h * T + i) * T)..<((h * T + i + 1) * T)]))
                                    })
                            })
                    })
            ),
        ])
    }

    public var npy: [UInt8] {
        let data = probabilities.flatMap { $0 }.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian, Array.init) }
        return npyFile(descr: "<f4", shape: [layers, heads, length, length], data: data)
    }

    /// One head's pattern: rows are queries, columns keys, darker is more attention.
    public func svg(layer l: Int, head h: Int) -> String {
        let T = length
        let cell = 18
        let left = 110
        let top = 120
        let width = left + T * cell + 40
        let height = top + T * cell + 50
        var s =
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(width)\" height=\"\(height)\" font-family=\"Helvetica,Arial,sans-serif\" font-size=\"10\">\n"
        s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        s +=
            "<text x=\"10\" y=\"22\" font-size=\"14\" font-weight=\"bold\">\(escapeXML(PrunableUnit.head(l, h).description)): attention (rows: queries, columns: keys)</text>\n"
        for (j, t) in tokens.enumerated() {
            s +=
                "<text transform=\"translate(\(left + j * cell + cell / 2 + 3),\(top - 6)) rotate(-60)\">\(escapeXML(t))</text>\n"
            s +=
                "<text x=\"\(left - 6)\" y=\"\(top + j * cell + cell / 2 + 3)\" text-anchor=\"end\">\(escapeXML(t))</text>\n"
        }
        for i in 0..<T {
            for j in 0..<T {
                let w = Double(weight(layer: l, head: h, query: i, key: j))
                let shade = Int(255 - 200 * max(0, min(1, w)))
                s +=
                    "<rect x=\"\(left + j * cell)\" y=\"\(top + i * cell)\" width=\"\(cell - 1)\" height=\"\(cell - 1)\" fill=\"rgb(\(shade),\(shade),255)\"><title>\(escapeXML(tokens[i])) → \(escapeXML(tokens[j])): \(String(format: "%.3f", w))</title></rect>\n"
            }
        }
        return s + "</svg>\n"
    }
}

/// `hcore circuits attention`: each encoding's patterns as a JSON line through `emit`, or .npy files (and the
/// tokens) into `npy`; with `svg`, one head of the first pair drawn there.
public func dumpAttention(
    model: BertModel, tokenizer: BertTokenizer, encodings: [Encoding], npy: String?, svg: String?,
    head unit: String, emit: (String) -> Void
) throws {
    guard let u = PrunableUnit(unit), let head = u.head, u.layer < model.layerCount, head < model.headCount else {
        throw SettingError(
            "head", "'\(unit)' is not a head of this model (a0.h0 … a\(model.layerCount - 1).h\(model.headCount - 1))")
    }
    let layer = u.layer
    if let npy { try makeFolder(npy) }
    for (n, e) in encodings.enumerated() {
        let batch = TokenBatch([e])
        let p = AttentionPatterns(
            tokens: e.inputIds.map(tokenizer.token), sequence: 0, of: batch,
            patterns: try model.attentionPatterns(batch), heads: model.headCount)
        if let svg, n == 0 { try writeAtomically(Array(p.svg(layer: layer, head: head).utf8), to: svg) }
        guard let npy else {
            emit(p.json.compact)
            continue
        }
        try writeAtomically(p.npy, to: npy + "/attention-\(n).npy")
        try writeAtomically(
            Array(JSONValue.array(p.tokens.map { .string($0) }).compact.utf8), to: npy + "/tokens-\(n).json")
    }
}
