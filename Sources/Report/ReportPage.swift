// The report's index.html: the verdict with the tests behind it, the figures, every subnetwork, the core.
import Checkpoint
import Circuits
import Foundation
import Model

extension ResearchReport {
    var html: String {
        var h = """
            <!doctype html>
            <html><head><meta charset="utf-8"><title>hcore report</title>
            <style>body{font-family:Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;color:#222}
            table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
            th{background:#f4f4f4}td:first-child{text-align:left}.verdict{background:#f7f7e8;padding:0.8em;border-left:4px solid #b5a000}
            img{max-width:100%}figure{display:inline-block;margin:0.5em}</style></head><body>
            <h1>Subnetworks of one model: in-domain vs out-of-domain</h1>
            <p>In-domain set <b>\(escapeXML(idKey))</b>; out-of-domain measure: <b>\(escapeXML(oodMeasureName))</b>\(plottedKey.map { " (from " + escapeXML($0) + ": " + plottedPairs.map { "\($0.0) \($0.1) pairs" }.joined(separator: ", ") + ")" } ?? ""). Pruned units are replaced by their mean activation. A subnetwork matches the full model when \(escapeXML(rule.words)).</p>
            <p class="verdict">\(escapeXML(verdict.text))</p>
            \(record.map { "<p><b>How often:</b> " + escapeXML($0) + "</p>" } ?? "")

            """
        h += testsTable
        if let f = full {
            h +=
                "<h2>The full model</h2><table><tr><th>\(escapeXML(idKey))</th><th>OOD measure</th><th>HANS</th><th>entailed</th><th>non-entailed</th></tr>"
            h +=
                "<tr><td>\(pct(f.id))</td><td>\(pct(f.oodMeasure))</td><td>\(pct(f.ood))</td><td>\(pct(f.oodEntailed))</td><td>\(pct(f.oodNonEntailed))</td></tr></table>\n"
        }
        h += "<h2>Figures</h2>\n"
        for (file, caption) in figureCaptions {
            h +=
                "<figure><img src=\"\(file)\" alt=\"\(file)\"><figcaption>\(escapeXML(caption))</figcaption></figure>\n"
        }
        h += subnetworkTable + coreSection
        h += "<p style=\"color:#777\">Written by hcore report. Data: report.json.</p></body></html>\n"
        return h
    }

    /// The verdict's four tests, each with its figure.
    var testsTable: String {
        var rows = [
            (
                "1 matching", "\(matching.count) subnetworks match",
                "≥ \(Verdict.shownMatching)", matching.count >= Verdict.shownMatching ? "pass" : "fail"
            )
        ]
        if let s = span {
            rows.append(
                (
                    "2 noise",
                    "span \(fmt(s.span, 1)) points; identical subnetworks span \(fmt(s.noiseMean, 1)) (95th pct \(fmt(s.noise95, 1))), p = \(fmt(s.noiseP, 4)), \(s.permutations) permutations",
                    "p < \(Verdict.noiseLevel)", s.noiseP < Verdict.noiseLevel ? "pass" : "fail"
                ))
            rows.append(
                (
                    "3 interval",
                    "95% bootstrap interval over pairs \(fmt(s.interval.low, 1))–\(fmt(s.interval.high, 1)) (\(s.bootstraps) resamples)",
                    "≥ \(fmt(Verdict.shownPoints, 0))",
                    s.interval.low >= Verdict.shownPoints
                        ? "pass" : s.interval.high < Verdict.shownPoints ? "fail" : "straddles"
                ))
        } else {
            rows.append(
                ("2–3 noise, interval", "no per-pair predictions (hcore eval's per-example predictions)", "", "—"))
        }
        if let l = lean {
            rows.append(
                (
                    "4 lean",
                    "r with in-domain accuracy \(signed(l.withInDomain)), with HANS entailed accuracy \(signed(l.withEntailed)); R² \(fmt(l.rSquared, 2)); residual span \(fmt(l.residualSpan, 1)) points",
                    "≥ \(fmt(Verdict.shownPoints, 0))", l.residualSpan >= Verdict.shownPoints ? "pass" : "fail"
                ))
        }
        var h = "<table><tr><th>test</th><th>measured</th><th>bar</th><th>result</th></tr>"
        for r in rows {
            h +=
                "<tr><td>\(escapeXML(r.0))</td><td style=\"text-align:left\">\(escapeXML(r.1))</td><td>\(escapeXML(r.2))</td><td>\(r.3)</td></tr>"
        }
        return h + "</table>\n"
    }

    var figureCaptions: [(String, String)] {
        var out = [
            (
                "id-vs-ood.svg",
                "Each subnetwork's in-domain accuracy against the OOD measure (circles) and its HANS entailed accuracy (triangles); the shaded band is where subnetworks match the full model in-domain."
            ),
            (
                "accuracy-sparsity.svg",
                "In-domain accuracy, the OOD measure and HANS entailed accuracy against each subnetwork's realised sparsity."
            ),
        ]
        if (try? paperViolin()) != nil {
            out.append(
                (
                    "subnetworks-vplot.svg",
                    "The paper's violin figure for this run: the matching subnetworks' accuracy in-domain and on the four HANS subcases the paper plots; black segments: the full model; dashed: in-domain | out-of-domain."
                ))
        }
        if coreEvidence != nil {
            out.append(
                (
                    "keep-frequency.svg",
                    "How often each head and MLP is kept by the subnetworks that match the model in-domain; outlined: the core."
                ))
        }
        out.append(
            (
                "composition.svg",
                "Each head's strongest weight composition (Q, K or V) with the core's heads, as 1 − p against the same maximum over heads drawn outside the core from the core's layers (1000 draws); every LayerNorm on the way folded in."
            ))
        return out
    }

    var subnetworkTable: String {
        var h =
            "<h2>Subnetworks</h2><table><tr><th>name</th><th>sparsity (target)</th><th>\(escapeXML(idKey))</th><th>Δ vs full</th><th>agrees with full</th><th>OOD measure</th><th>HANS entailed</th><th>matches</th></tr>\n"
        for s in subnetworks.sorted(by: { $0.id > $1.id }) {
            let delta = full.map { fmt((s.id - $0.id) * 100, 1) } ?? "—"
            let target = s.targetSparsity.map { " (\(fmt($0, 2)))" } ?? ""
            h +=
                "<tr><td>\(escapeXML(s.name))</td><td>\(fmt(s.sparsity, 3))\(target)</td><td>\(pct(s.id))</td><td>\(delta)</td><td>\(pct(s.idAgreement))</td><td>\(pct(s.oodMeasure))</td><td>\(pct(s.oodEntailed))</td><td>\(matching.contains(s.name) ? "yes" : "no")</td></tr>\n"
        }
        return h + "</table>\n"
    }

    var coreSection: String {
        guard let e = coreEvidence else {
            return "<h2>The core</h2><p>No core: \(escapeXML(coreRefusal ?? "no matching subnetworks"))</p>\n"
        }
        var h =
            "<h2>The core</h2><p>Units kept by every one of the \(e.report.subnetworks.count) matching subnetworks: <b>"
        h +=
            e.report.core.isEmpty ? "none" : e.report.core.map { e.report.name($0).description }.joined(separator: ", ")
        h += "</b>.</p><ul>"
        for line in e.table.dropFirst().filter({ !$0.hasPrefix("layer ") && !$0.hasPrefix("core (") }) {
            h += "<li>\(escapeXML(line))</li>"
        }
        h += "</ul>\n"
        if let r = readers {
            h += "<h2>Who reads the core</h2><pre>"
            h += r.table(top: 15).map(escapeXML).joined(separator: "\n")
            h += "</pre>\n"
        }
        return h
    }
}
