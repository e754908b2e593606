// BERT's WordPiece tokenizer, equal to Hugging Face's fast tokenizer (tokenizers' BertNormalizer +
// BertPreTokenizer + WordPiece + TemplateProcessing) on every golden case.
//
// The stages, each a small function below, in the order they run:
//   1. split out special tokens written literally in the text ("[CLS]", "[MASK]"…; matched before
//      normalisation, case-sensitively, as HF's added-token matching does);
//   2. normalise: clean (drop NUL, U+FFFD and control/format chars; white space → ' '), put spaces
//      around CJK ideographs, lower-case, NFD and drop non-spacing marks (Mn);
//   3. pre-tokenise: split on white space, and make each punctuation char its own word;
//   4. WordPiece: greedy longest-match-first with "##" continuations; a word longer than 100 scalars,
//      or with no segmentation, becomes [UNK];
//   5. template: [CLS] A [SEP] (B [SEP]), token types 0 for A, 1 for B, truncation to max_length.
import Failures
import Foundation

public enum TokenizerError: ClassifiedError {
    public var kind: FailureKind { .badInput }
    case cannotRead(path: String, reason: String)
    case unsupported(path: String, reason: String)
    case cannotTruncate(reason: String)

    public var description: String {
        switch self {
        case .cannotRead(let path, let reason): return "\(path): \(reason)"
        case .unsupported(let path, let reason): return "\(path): unsupported tokenizer: \(reason)"
        case .cannotTruncate(let reason): return "cannot truncate: \(reason)"
        }
    }
}

public enum TruncationStrategy: String, CaseIterable, Sendable {
    case longestFirst = "longest_first"
    case onlyFirst = "only_first"
    case onlySecond = "only_second"
    case none = "do_not_truncate"
}

/// Token ids of one example, with [CLS]/[SEP] and token types.
public struct Encoding: Equatable, Sendable {
    public var inputIds: [Int32]
    public var tokenTypeIds: [Int32]
    public var count: Int { inputIds.count }

    public init(inputIds: [Int32], tokenTypeIds: [Int32]) {
        self.inputIds = inputIds
        self.tokenTypeIds = tokenTypeIds
    }
}

public final class BertTokenizer: @unchecked Sendable {
    public let vocab: [String: Int32]
    public let idToToken: [String]
    public let lowercase: Bool
    public let stripAccents: Bool
    public let handleChineseChars: Bool
    public let cleanText: Bool
    public let maxInputCharsPerWord: Int
    public let continuingPrefix: String
    public let clsId: Int32, sepId: Int32, padId: Int32, unkId: Int32
    /// Special tokens matched literally in raw text, longest first.
    let specialTokens: [(text: [Unicode.Scalar], id: Int32)]

    public init(
        vocabulary: [String], lowercase: Bool = true, stripAccents: Bool? = nil, handleChineseChars: Bool = true,
        cleanText: Bool = true, maxInputCharsPerWord: Int = 100, continuingPrefix: String = "##",
        unkToken: String = "[UNK]", clsToken: String = "[CLS]", sepToken: String = "[SEP]",
        padToken: String = "[PAD]", specialTokens: [String: Int32]? = nil
    ) throws {
        var vocab: [String: Int32] = [:]
        vocab.reserveCapacity(vocabulary.count)
        for (i, t) in vocabulary.enumerated() where vocab[t] == nil { vocab[t] = Int32(i) }
        self.vocab = vocab
        idToToken = vocabulary
        self.lowercase = lowercase
        self.stripAccents = stripAccents ?? lowercase
        self.handleChineseChars = handleChineseChars
        self.cleanText = cleanText
        self.maxInputCharsPerWord = maxInputCharsPerWord
        self.continuingPrefix = continuingPrefix
        func id(_ t: String) throws -> Int32 {
            guard let i = vocab[t] else {
                throw TokenizerError.unsupported(path: "vocabulary", reason: "no '\(t)' token")
            }
            return i
        }
        clsId = try id(clsToken)
        sepId = try id(sepToken)
        unkId = try id(unkToken)
        padId = vocab[padToken] ?? 0
        var specials = specialTokens ?? [:]
        if specialTokens == nil {
            for t in [padToken, unkToken, clsToken, sepToken, "[MASK]"] { if let i = vocab[t] { specials[t] = i } }
        }
        self.specialTokens = specials.map { (Array($0.key.unicodeScalars), $0.value) }
            .sorted { $0.text.count > $1.text.count || ($0.text.count == $1.text.count && $0.id < $1.id) }
    }

    // MARK: loading

    /// From a model folder: tokenizer.json if present (what HF's fast tokenizer uses), else vocab.txt
    /// with tokenizer_config.json's do_lower_case / strip_accents / tokenize_chinese_chars.
    public static func load(folder: String) throws -> BertTokenizer {
        let tj = (folder as NSString).appendingPathComponent("tokenizer.json")
        if FileManager.default.fileExists(atPath: tj) { return try load(tokenizerJSON: tj) }
        let vt = (folder as NSString).appendingPathComponent("vocab.txt")
        guard FileManager.default.fileExists(atPath: vt) else {
            throw TokenizerError.cannotRead(path: folder, reason: "no tokenizer.json or vocab.txt in the model folder")
        }
        var lower = true
        var strip: Bool? = nil
        var chinese = true
        let tc = (folder as NSString).appendingPathComponent("tokenizer_config.json")
        if let d = try InputFiles.readIfPresent(tc).map({ Data($0) }),
            let j = try? JSONSerialization.jsonObject(with: d) as? [String: Any]
        {
            lower = (j["do_lower_case"] as? Bool) ?? true
            strip = j["strip_accents"] as? Bool
            chinese = (j["tokenize_chinese_chars"] as? Bool) ?? true
        }
        return try load(vocabTxt: vt, lowercase: lower, stripAccents: strip, handleChineseChars: chinese)
    }

    public static func load(
        vocabTxt path: String, lowercase: Bool = true, stripAccents: Bool? = nil,
        handleChineseChars: Bool = true
    ) throws -> BertTokenizer {
        let d = Data(try InputFiles.read(path))
        return try parse(
            vocabTxt: d, path: path, lowercase: lowercase, stripAccents: stripAccents,
            handleChineseChars: handleChineseChars)
    }

    /// A vocab.txt's bytes, read as if from `path` (named in errors).
    public static func parse(
        vocabTxt d: Data, path: String, lowercase: Bool = true, stripAccents: Bool? = nil,
        handleChineseChars: Bool = true
    ) throws -> BertTokenizer {
        guard let text = String(data: d, encoding: .utf8) else {
            throw TokenizerError.cannotRead(path: path, reason: "not UTF-8")
        }
        // "\r\n" is one Character in Swift: split on both line ends, or a Windows vocab.txt would be one line.
        var lines = text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" })
            .map { $0.hasSuffix("\r") ? String($0.dropLast()) : String($0) }
        if lines.last == "" { lines.removeLast() }
        guard !lines.isEmpty else { throw TokenizerError.cannotRead(path: path, reason: "empty vocabulary") }
        return try BertTokenizer(
            vocabulary: lines, lowercase: lowercase, stripAccents: stripAccents, handleChineseChars: handleChineseChars)
    }

    public static func load(tokenizerJSON path: String) throws -> BertTokenizer {
        return try parse(tokenizerJSON: Data(try InputFiles.read(path)), path: path)
    }

    /// A tokenizer.json's bytes, read as if from `path` (named in errors).
    public static func parse(tokenizerJSON d: Data, path: String) throws -> BertTokenizer {
        guard let j = (try? JSONSerialization.jsonObject(with: d)) as? [String: Any] else {
            throw TokenizerError.cannotRead(path: path, reason: "not a JSON object")
        }
        guard let model = j["model"] as? [String: Any], (model["type"] as? String) == "WordPiece",
            let vocabMap = model["vocab"] as? [String: Any]
        else {
            throw TokenizerError.unsupported(path: path, reason: "model is not WordPiece")
        }
        var lower = true
        var strip: Bool? = nil
        var chinese = true
        var clean = true
        if let n = j["normalizer"] as? [String: Any] {
            guard (n["type"] as? String) == "BertNormalizer" else {
                throw TokenizerError.unsupported(
                    path: path, reason: "normalizer '\(n["type"] ?? "?")' (expected BertNormalizer)")
            }
            lower = (n["lowercase"] as? Bool) ?? true
            strip = n["strip_accents"] as? Bool
            chinese = (n["handle_chinese_chars"] as? Bool) ?? true
            clean = (n["clean_text"] as? Bool) ?? true
        }
        if let p = j["pre_tokenizer"] as? [String: Any], (p["type"] as? String) != "BertPreTokenizer" {
            throw TokenizerError.unsupported(
                path: path, reason: "pre_tokenizer '\(p["type"] ?? "?")' (expected BertPreTokenizer)")
        }
        var vocabulary = [String](repeating: "", count: vocabMap.count)
        for (t, v) in vocabMap {
            guard let i = (v as? NSNumber)?.intValue, i >= 0, i < vocabMap.count else {
                throw TokenizerError.cannotRead(path: path, reason: "vocabulary ids are not 0..<\(vocabMap.count)")
            }
            vocabulary[i] = t
        }
        var specials: [String: Int32] = [:]
        for a in (j["added_tokens"] as? [[String: Any]]) ?? [] {
            guard let c = a["content"] as? String, let n = a["id"] as? NSNumber else { continue }
            guard let i = Int32(exactly: n.doubleValue), i >= 0 else {
                throw TokenizerError.cannotRead(path: path, reason: "added token '\(c)' has id \(n), not a token id")
            }
            specials[c] = i
        }
        return try BertTokenizer(
            vocabulary: vocabulary, lowercase: lower, stripAccents: strip, handleChineseChars: chinese,
            cleanText: clean, maxInputCharsPerWord: (model["max_input_chars_per_word"] as? Int) ?? 100,
            continuingPrefix: (model["continuing_subword_prefix"] as? String) ?? "##",
            unkToken: (model["unk_token"] as? String) ?? "[UNK]",
            specialTokens: specials.isEmpty ? nil : specials)
    }

    // MARK: encoding

    /// WordPiece ids of `text`, without [CLS]/[SEP].
    public func tokenize(_ text: String) -> [Int32] {
        var ids: [Int32] = []
        let scalars = Array(text.unicodeScalars)
        for piece in splitSpecialTokens(scalars) {
            switch piece {
            case .special(let id): ids.append(id)
            case .text(let chunk):
                for word in preTokenize(normalize(chunk)) { wordPiece(word, into: &ids) }
            }
        }
        return ids
    }

    /// The words of `text` after normalisation and pre-tokenisation, before WordPiece (what a word-level
    /// vocabulary for this tokenizer has to contain; special tokens are not recognised here).
    public func basicTokens(_ text: String) -> [String] {
        preTokenize(normalize(Array(text.unicodeScalars))).map { String(String.UnicodeScalarView($0)) }
    }

    /// [CLS] A [SEP] (B [SEP]) truncated to `maxLength` tokens (nil: no limit).
    public func encode(
        _ text: String, pair: String? = nil, maxLength: Int? = 128,
        truncation: TruncationStrategy = .longestFirst
    ) throws -> Encoding {
        var a = tokenize(text)
        var b = pair.map(tokenize)
        let specials = b == nil ? 2 : 3
        if let maxLength, truncation != .none, a.count + (b?.count ?? 0) + specials > maxLength {
            let budget = maxLength - specials
            guard budget >= 0 else {
                throw TokenizerError.cannotTruncate(
                    reason: "max_length \(maxLength) leaves no room for the \(specials) special tokens")
            }
            if var bb = b {
                try truncatePair(&a, &bb, budget: budget, strategy: truncation)
                b = bb
            } else {
                if truncation == .onlySecond {
                    throw TokenizerError.cannotTruncate(reason: "only_second on a single sequence")
                }
                a.removeSubrange(budget...)
            }
        }
        var ids: [Int32] = [clsId]
        ids += a
        ids.append(sepId)
        var types = [Int32](repeating: 0, count: ids.count)
        if let b {
            ids += b
            ids.append(sepId)
            types += [Int32](repeating: 1, count: b.count + 1)
        }
        return Encoding(inputIds: ids, tokenTypeIds: types)
    }

    /// HF fast tokenizer's pair truncation (Tests/Fixtures/golden/GOLDEN-README.md §2 states the rule).
    func truncatePair(_ a: inout [Int32], _ b: inout [Int32], budget: Int, strategy: TruncationStrategy) throws {
        switch strategy {
        case .none: return
        case .onlyFirst:
            guard b.count <= budget else {
                throw TokenizerError.cannotTruncate(
                    reason: "the second sequence alone (\(b.count) tokens) exceeds the budget \(budget) with only_first"
                )
            }
            a.removeSubrange((budget - b.count)...)
        case .onlySecond:
            guard a.count <= budget else {
                throw TokenizerError.cannotTruncate(
                    reason: "the first sequence alone (\(a.count) tokens) exceeds the budget \(budget) with only_second"
                )
            }
            b.removeSubrange((budget - a.count)...)
        case .longestFirst:
            let n1 = a.count
            let n2 = b.count
            let keep1: Int
            let keep2: Int
            let s = min(n1, n2)
            if s <= budget / 2 {
                keep1 = n1 <= n2 ? n1 : budget - n2
                keep2 = n1 <= n2 ? budget - n1 : n2
            } else {
                let hi = (budget + 1) / 2
                let lo = budget / 2
                if n1 > n2 {
                    keep1 = hi
                    keep2 = lo
                } else {
                    keep1 = lo
                    keep2 = hi
                }  // tie: second gets ceil
            }
            if keep1 < n1 { a.removeSubrange(keep1...) }
            if keep2 < n2 { b.removeSubrange(keep2...) }
        }
    }

    public func token(_ id: Int32) -> String {
        id >= 0 && Int(id) < idToToken.count ? idToToken[Int(id)] : "<\(id)>"
    }

    // MARK: stage 1 — special tokens written in the text

    enum Piece {
        case special(Int32)
        case text([Unicode.Scalar])
    }

    func splitSpecialTokens(_ s: [Unicode.Scalar]) -> [Piece] {
        var pieces: [Piece] = []
        var start = 0
        var i = 0
        outer: while i < s.count {
            if s[i] == "[" {
                for (t, id) in specialTokens where i + t.count <= s.count && s[i] == t[0] {
                    if s[i..<(i + t.count)].elementsEqual(t) {
                        if start < i { pieces.append(.text(Array(s[start..<i]))) }
                        pieces.append(.special(id))
                        i += t.count
                        start = i
                        continue outer
                    }
                }
            }
            i += 1
        }
        if start < s.count { pieces.append(.text(Array(s[start..<s.count]))) }
        return pieces
    }

    // MARK: stage 2 — normalisation

    func normalize(_ s: [Unicode.Scalar]) -> [Unicode.Scalar] {
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(s.count + 8)
        var needsDecomposition = false
        for c in s {
            if cleanText {
                if c.value == 0 || c.value == 0xFFFD || isControl(c) { continue }
                if isWhitespace(c) {
                    out.append(" ")
                    continue
                }
            }
            if handleChineseChars && isChineseChar(c) {
                out.append(" ")
                out.append(c)
                out.append(" ")
                continue
            }
            if lowercase {
                if c.isASCII {
                    out.append(c.value >= 65 && c.value <= 90 ? Unicode.Scalar(c.value + 32)! : c)
                } else {
                    out += c.properties.lowercaseMapping.unicodeScalars
                    needsDecomposition = true
                }
            } else {
                out.append(c)
                if !c.isASCII { needsDecomposition = true }
            }
        }
        if stripAccents && needsDecomposition {
            let decomposed = String(String.UnicodeScalarView(out)).decomposedStringWithCanonicalMapping
            out = decomposed.unicodeScalars.filter { $0.properties.generalCategory != .nonspacingMark }
        }
        return out
    }

    // MARK: stage 3 — pre-tokenisation

    func preTokenize(_ s: [Unicode.Scalar]) -> [ArraySlice<Unicode.Scalar>] {
        var words: [ArraySlice<Unicode.Scalar>] = []
        var start = -1
        for (i, c) in s.enumerated() {
            if isWhitespace(c) {
                if start >= 0 {
                    words.append(s[start..<i])
                    start = -1
                }
            } else if isPunctuation(c) {
                if start >= 0 {
                    words.append(s[start..<i])
                    start = -1
                }
                words.append(s[i...i])
            } else if start < 0 {
                start = i
            }
        }
        if start >= 0 { words.append(s[start..<s.count]) }
        return words
    }

    // MARK: stage 4 — WordPiece

    func wordPiece(_ word: ArraySlice<Unicode.Scalar>, into ids: inout [Int32]) {
        if word.count > maxInputCharsPerWord {
            ids.append(unkId)
            return
        }
        var pieces: [Int32] = []
        var start = word.startIndex
        while start < word.endIndex {
            var end = word.endIndex
            var found: Int32? = nil
            while start < end {
                var candidate = start == word.startIndex ? "" : continuingPrefix
                candidate.unicodeScalars.append(contentsOf: word[start..<end])
                if let id = vocab[candidate] {
                    found = id
                    break
                }
                end -= 1
            }
            guard let id = found else {
                ids.append(unkId)
                return
            }
            pieces.append(id)
            start = end
        }
        ids += pieces
    }
}

// MARK: character classes (as in tokenizers' bert normaliser and pre-tokeniser)

/// Unicode White_Space, which includes \t \n \r, NBSP, U+2028/2029 and U+3000.
@inline(__always)
func isWhitespace(_ c: Unicode.Scalar) -> Bool {
    if c.isASCII { return c == " " || c == "\t" || c == "\n" || c == "\r" || c.value == 0x0B || c.value == 0x0C }
    return c.properties.isWhitespace
}

/// General category C* (control, format, surrogate, private use, unassigned) except \t \n \r.
@inline(__always)
func isControl(_ c: Unicode.Scalar) -> Bool {
    if c == "\t" || c == "\n" || c == "\r" { return false }
    if c.isASCII { return c.value < 0x20 || c.value == 0x7F }
    switch c.properties.generalCategory {
    case .control, .format, .surrogate, .privateUse, .unassigned: return true
    default: return false
    }
}

/// ASCII punctuation/symbols and every Unicode P* character.
@inline(__always)
func isPunctuation(_ c: Unicode.Scalar) -> Bool {
    let v = c.value
    if (33...47).contains(v) || (58...64).contains(v) || (91...96).contains(v) || (123...126).contains(v) {
        return true
    }
    if c.isASCII { return false }
    switch c.properties.generalCategory {
    case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
        .initialPunctuation, .finalPunctuation, .otherPunctuation:
        return true
    default: return false
    }
}

/// CJK Unified Ideographs blocks (not kana or Hangul), as BERT defines "Chinese characters".
@inline(__always)
func isChineseChar(_ c: Unicode.Scalar) -> Bool {
    let v = c.value
    return (0x4E00...0x9FFF).contains(v) || (0x3400...0x4DBF).contains(v) || (0x20000...0x2A6DF).contains(v)
        || (0x2A700...0x2B73F).contains(v) || (0x2B740...0x2B81F).contains(v) || (0x2B820...0x2CEAF).contains(v)
        || (0xF900...0xFAFF).contains(v) || (0x2F800...0x2FA1F).contains(v)
}

extension BertTokenizer {
    /// A word-level vocabulary for training from scratch: BERT's special tokens, then every word of `texts`
    /// after basic tokenization (lower-cased, punctuation split), sorted.
    public static func wordVocabulary(_ texts: [String]) throws -> [String] {
        let specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        let basic = try BertTokenizer(vocabulary: specials)
        var words = Set<String>()
        for t in texts { for w in basic.basicTokens(t) { words.insert(w) } }
        return specials + words.subtracting(specials).sorted()
    }
}
