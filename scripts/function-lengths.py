#!/usr/bin/env python3
"""Lengths of Swift functions as formatted: every `func`, `init` and `deinit` body, from its declaration's first
line to its closing brace. Exits 1 when one is over its limit: a command's `run` in Sources/hcore over 40 lines,
any other function over 80. The GEMM micro-kernels and the pickle opcode dispatch are the stated exceptions
(straight-line code whose length is its content).

    scripts/function-lengths.py [--top N] [paths…]      (default: Sources Benchmarks)
"""
import os
import re
import sys

LIMIT = 80
RUN_LIMIT = 40
EXEMPT = {
    ("Sources/Kernels/GEMM.swift", "microKernel"),
    ("Sources/Checkpoint/Pickle.swift", "load"),
}

DECL = re.compile(r"\b(func\s+([A-Za-z_][A-Za-z0-9_]*|[^\s(]+)|init[?!]?|deinit)\s*[(<{]")


def code_mask(text):
    """The text with comments and string contents blanked (newlines kept), so braces in them do not count."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == '"':
            j = skip_string(text, i)
            out.append('"' + re.sub(r"[^\n]", " ", text[i + 1 : j - 1]) + '"')
            i = j
        else:
            out.append(c)
            i += 1
    return "".join(out)


def skip_string(text, i):
    """Index just past the string literal starting at i (plain or triple-quoted, interpolations nested)."""
    triple = text.startswith('"""', i)
    quote = '"""' if triple else '"'
    j = i + len(quote)
    while j < len(text):
        if text[j] == "\\":
            if text.startswith("\\(", j):
                depth, j = 1, j + 2
                while j < len(text) and depth:
                    if text[j] == '"':
                        j = skip_string(text, j)
                        continue
                    depth += {"(": 1, ")": -1}.get(text[j], 0)
                    j += 1
                continue
            j += 2
            continue
        if text.startswith(quote, j):
            return j + len(quote)
        j += 1
    return j


def functions(path):
    text = open(path, encoding="utf-8").read()
    masked = code_mask(text)
    for m in DECL.finditer(masked):
        name = m.group(2) or m.group(1).rstrip("?!")
        # The body's opening brace: the first '{' after the declaration at parenthesis depth 0.
        depth, j = 0, m.end() - 1
        while j < len(masked):
            ch = masked[j]
            if ch in "(<[":
                depth += 1
            elif ch in ")]" or (ch == ">" and masked[j - 1] != "-"):
                depth -= 1
            elif ch == "{" and depth <= 0:
                break
            elif ch == "\n" and depth <= 0 and masked[m.start() : j].count("{") == 0 and protocol_requirement(masked, j):
                j = -1
                break
            j += 1
        if j < 0 or j >= len(masked):
            continue
        braces, k = 0, j
        while k < len(masked):
            if masked[k] == "{":
                braces += 1
            elif masked[k] == "}":
                braces -= 1
                if braces == 0:
                    break
            k += 1
        first = text.count("\n", 0, m.start()) + 1
        last = text.count("\n", 0, k) + 1
        yield name, first, last - first + 1


def protocol_requirement(masked, newline):
    """A declaration line without a body (protocol requirement): the next non-blank line does not open one."""
    rest = masked[newline + 1 :].lstrip()
    return not rest.startswith("{") and not rest.startswith("where") and not rest.startswith("->") and not rest.startswith("throws")


def main(argv):
    top = None
    if argv[:1] == ["--top"]:
        top, argv = int(argv[1]), argv[2:]
    roots = argv or ["Sources", "Benchmarks"]
    rows = []
    for root in roots:
        for dirpath, _, files in os.walk(root):
            for f in sorted(files):
                if f.endswith(".swift"):
                    path = os.path.join(dirpath, f)
                    rows += [(length, path, line, name) for name, line, length in functions(path)]
    rows.sort(reverse=True)
    if top:
        for length, path, line, name in rows[:top]:
            print(f"{length:5d}  {path}:{line}  {name}")
        return 0
    bad = []
    for length, path, line, name in rows:
        if (path, name) in EXEMPT:
            continue
        command_run = path.startswith("Sources/hcore/") and name == "run"
        limit = RUN_LIMIT if command_run else LIMIT
        if length > limit:
            bad.append(f"{path}:{line}: {name} is {length} lines (limit {limit})")
    for b in bad:
        print(b)
    print(f"{len(rows)} functions; {len(bad)} over their limit")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
