// The embedded default task of `hcore demo`: an in-domain NLI set that rewards the lexical-overlap
// shortcut, built deterministically from the HANS training set the repository carries, and a fixed
// subset of the HANS evaluation set as out-of-domain.
//
// In-domain (train and dev, disjoint, from heuristics_train_set.txt; labels entailment / non-entailment):
//   45%  high-overlap entailed pairs      HANS train pairs with gold "entailment" (every hypothesis word
//                                         occurs in the premise)
//   35%  low-overlap non-entailed pairs   the premise of one HANS train pair with the hypothesis of
//                                         another, kept only if none of the hypothesis' content words
//                                         occurs in the premise (articles and punctuation ignored)
//   20%  high-overlap non-entailed pairs  HANS train pairs with gold "non-entailment" from the eleven
//                                         non-entailment subcases the paper does not plot (`seenSubcases`)
// No in-domain pair — nor any premise or hypothesis a low-overlap pair borrows — comes from the four subcases
// the paper plots (`plottedHANSSubcases`): they stay out-of-domain entirely, as the paper's measure needs.
// So "predict entailment when the words overlap" scores 80% in-domain, and a model that also learns the
// exceptions it was shown still has to generalise them to the four held-out subcases — where, measured on
// MiniLM, pruned subnetworks that match the full model in-domain disagree (README, "What the demo shows").
// (With 10% from three seen subcases the fine-tuned MiniLM scores 4–7% on the four and its subnetworks
// stay within a few points of each other.) The kind of each in-domain pair is its `heuristic` field
// ("high-overlap" / "low-overlap"), so metrics break it down.
// Out-of-domain, two sets: every `plottedStride`-th pair of the four plotted subcases (stride 1: all 4,000,
// the verdict's measure on all the pairs the paper uses), and every `oodStride`-th pair of heuristics_evaluation_set.txt (the file is grouped
// by subcase in blocks of 1,000, so stride 10 keeps 100 pairs of each of the 30 subcases: the HANS cells and
// the entailed accuracy the verdict's lean test needs).
// Order and pairing come from SplitMix64(seed): the same files and seed give the same task.
import Checkpoint
import Eval
import Foundation
import Kernels
import Tokenizer

public struct DemoTask: Sendable {
    public static let labels = ["entailment", "non-entailment"]
    /// HANS's fifteen non-entailment subcases less the four the paper plots.
    public static let seenSubcases: Set<String> = [
        "ln_conjunction", "ln_passive", "ln_relative_clause",
        "sn_NP/S", "sn_NP/Z", "sn_PP_on_subject", "sn_past_participle", "sn_relative_clause_on_subject",
        "cn_adverb", "cn_after_if_clause", "cn_disjunction",
    ]
    public var train: [Example]
    public var dev: [Example]
    public var ood: [Example]
    public var plotted: [Example]

    public static func build(
        hansTrain: [Example], hansEval: [Example], trainSize: Int = 4000, devSize: Int = 1000,
        highOverlapNonEntailedShare: Double = 0.2, oodStride: Int = 10, plottedStride: Int = 1, seed: UInt64 = 2024
    ) throws -> DemoTask {
        var rng = SplitMix64(seed: seed)
        var order = Array(hansTrain.indices)
        rng.shuffle(&order)
        var entailed = order.filter { hansTrain[$0].label == "entailment" }[...]
        var nonEntailed = order.filter {
            hansTrain[$0].label == "non-entailment" && seenSubcases.contains(hansTrain[$0].subcase ?? "")
        }[...]
        let heldOut = Set(plottedHANSSubcases)
        // premises and hypotheses for the low-overlap pairs
        var donors = order.filter { !heldOut.contains(hansTrain[$0].subcase ?? "") }[...]

        func content(_ s: String) -> Set<String> {
            Set(s.lowercased().split { !$0.isLetter }.map(String.init).filter { !["the", "a", "an"].contains($0) })
        }
        func split(_ n: Int) throws -> [Example] {
            let nE = Int((Double(n) * 0.45).rounded())
            let nNE = Int((Double(n) * highOverlapNonEntailedShare).rounded())
            let nLow = n - nE - nNE
            guard entailed.count >= nE, nonEntailed.count >= nNE else {
                throw DataError.badFile(path: "HANS training set", reason: "has too few pairs for a demo split of \(n)")
            }
            var out: [Example] = []
            for i in entailed.prefix(nE) { out.append(relabel(hansTrain[i], kind: "high-overlap")) }
            entailed = entailed.dropFirst(nE)
            for i in nonEntailed.prefix(nNE) { out.append(relabel(hansTrain[i], kind: "high-overlap")) }
            nonEntailed = nonEntailed.dropFirst(nNE)
            var low = 0
            while low < nLow {
                guard donors.count >= 2 else {
                    throw DataError.badFile(
                        path: "HANS training set", reason: "ran out of pairs for low-overlap examples")
                }
                let a = hansTrain[donors.removeFirst()]
                let b = hansTrain[donors.removeFirst()]
                let hyp = b.pair ?? ""
                let words = content(hyp)
                if words.isEmpty || !words.isDisjoint(with: content(a.text)) { continue }
                out.append(
                    Example(
                        text: a.text, pair: hyp, label: "non-entailment", heuristic: "low-overlap",
                        subcase: "mismatched"))
                low += 1
            }
            rng.shuffle(&out)
            for i in out.indices { out[i].line = i + 1 }
            return out
        }
        let train = try split(trainSize)
        let dev = try split(devSize)
        let ood = stride(from: 0, to: hansEval.count, by: max(1, oodStride)).map { hansEval[$0] }
        let plotted = hansEval.filter { heldOut.contains($0.subcase ?? "") }.enumerated().filter {
            $0.offset % max(1, plottedStride) == 0
        }.map(\.element)
        return DemoTask(train: train, dev: dev, ood: ood, plotted: plotted)
    }

    static func relabel(_ e: Example, kind: String) -> Example {
        Example(text: e.text, pair: e.pair, label: e.label, heuristic: kind, subcase: e.subcase)
    }

    /// A word-level vocabulary covering every text of the task (so no word is unknown), in a fixed order:
    /// BERT's special tokens, then the words sorted. The tokenizer is uncased BERT's basic tokenizer.
    public func vocabulary() throws -> [String] {
        try BertTokenizer.wordVocabulary(
            (train + dev + ood + plotted).flatMap { [$0.text] + ($0.pair.map { [$0] } ?? []) })
    }

    /// Writes the in-domain sets as JSONL (text, text_pair, label, heuristic = kind) and the OOD sets in
    /// HANS's own TSV columns, so every `hcore` command can be rerun on them.
    public func write(folder: String) throws -> (train: String, dev: String, ood: String, plotted: String) {
        try makeFolder(folder)
        func jsonl(_ xs: [Example]) throws -> String {
            try xs.map { e in
                let o: [String: Any] = [
                    "text": e.text, "text_pair": e.pair ?? "", "label": e.label ?? "", "heuristic": e.heuristic ?? "",
                ]
                return String(
                    decoding: try JSONSerialization.data(withJSONObject: o, options: [.sortedKeys]), as: UTF8.self)
            }.joined(separator: "\n") + "\n"
        }
        let paths = (
            train: folder + "/train.jsonl", dev: folder + "/dev.jsonl",
            ood: folder + "/heuristics_evaluation_subset.txt", plotted: folder + "/hans-plotted.txt"
        )
        try writeAtomically(Array(try jsonl(train).utf8), to: paths.train)
        try writeAtomically(Array(try jsonl(dev).utf8), to: paths.dev)
        func tsv(_ xs: [Example]) -> [UInt8] {
            var out = "gold_label\tsentence1\tsentence2\tpairID\theuristic\tsubcase\ttemplate\n"
            for (i, e) in xs.enumerated() {
                out +=
                    "\(e.label ?? "")\t\(e.text)\t\(e.pair ?? "")\tex\(i)\t\(e.heuristic ?? "")\t\(e.subcase ?? "")\t-\n"
            }
            return Array(out.utf8)
        }
        try writeAtomically(tsv(ood), to: paths.ood)
        try writeAtomically(tsv(plotted), to: paths.plotted)
        return paths
    }
}
