#!/usr/bin/env python3
"""Functions longer than a limit in the .rs files below a folder (issue
"house": no non-test function over 80 lines without a comment saying why).

A function's length is its lines from the one holding `fn` to the one
holding its closing brace. Test code is left out: files named tests.rs, a
`#[cfg(test)]` module's block, and functions marked `#[test]`. A function
whose comment or attribute lines right above it say why it is long ("long
because", or "over 80 lines" in any case) is left out too. Prints `path:line name length` for each
function over the limit, longest first, and exits 1 if there is any.

Usage: fn-length.py FOLDER [LIMIT]     (LIMIT defaults to 80; brace
counting on the text with comments, strings and char literals blanked, not
a parser: a brace inside a macro's tokens counts like any other)"""
import os
import re
import signal
import sys

EXCUSE = re.compile(r"long because|over 80 lines", re.IGNORECASE)


def blank(text):
    """`text` with comments, strings and char literals turned into spaces,
    newlines kept, so that lines still number the same and every brace left
    is code."""
    out = list(text)
    i, n = 0, len(text)

    def wipe(a, b):
        for k in range(a, b):
            if out[k] != "\n":
                out[k] = " "

    while i < n:
        c = text[i]
        if text.startswith("//", i):
            end = text.find("\n", i)
            end = n if end < 0 else end
            wipe(i, end)
            i = end
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            wipe(i, j)
            i = j
        elif re.match(r'b?r#*"', text[i:i + 260]) and not (
            i and (text[i - 1].isalnum() or text[i - 1] == "_")
        ):
            m = re.match(r'(b?r)(#*)"', text[i:])
            close = '"' + m.group(2)
            end = text.find(close, i + len(m.group(0)))
            end = n if end < 0 else end + len(close)
            wipe(i, end)
            i = end
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            wipe(i, j + 1)
            i = j + 1
        elif c == "'":
            # A char literal ('x', '\n', '\u{1F600}') rather than a lifetime
            # or label ('a, 'static).
            m = re.match(r"'(\\u\{[0-9a-fA-F]+\}|\\.|[^\\'\n])'", text[i:])
            if m:
                wipe(i, i + len(m.group(0)))
                i += len(m.group(0))
            else:
                i += 1
        else:
            i += 1
    return "".join(out)


def closing(code, open_at):
    """The index of the brace that closes the one at `open_at`."""
    depth = 0
    for k in range(open_at, len(code)):
        if code[k] == "{":
            depth += 1
        elif code[k] == "}":
            depth -= 1
            if depth == 0:
                return k
    return len(code) - 1


def test_modules(code):
    """The index ranges of `#[cfg(test)] mod name { ... }` blocks."""
    spans = []
    for m in re.finditer(r"#\[cfg\(test\)\]\s*(pub(\([^)]*\))?\s+)?mod\s+\w+\s*\{", code):
        open_at = m.end() - 1
        spans.append((m.start(), closing(code, open_at)))
    return spans


def excused(lines, fn_line):
    """Whether the comment and attribute lines right above line `fn_line`
    (0-based) say why the function is long."""
    k = fn_line - 1
    while k >= 0:
        line = lines[k].strip()
        if not (line.startswith("//") or line.startswith("#[") or line.startswith("#![")):
            break
        if EXCUSE.search(line):
            return True
        k -= 1
    return False


def is_test(lines, fn_line):
    k = fn_line - 1
    while k >= 0:
        line = lines[k].strip()
        if line.startswith("#[test]") or line.startswith("#[cfg(test)]"):
            return True
        if not (line.startswith("//") or line.startswith("#[")):
            return False
        k -= 1
    return False


def long_functions(path, limit):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    code = blank(text)
    lines = text.split("\n")
    skip = test_modules(code)
    found = []
    for m in re.finditer(r"\bfn\s+(\w+)", code):
        start = m.start()
        if any(a <= start <= b for a, b in skip):
            continue
        # The body opens at the first `{` after the signature; a `;` first
        # is a declaration without one (a trait's required method).
        body = re.compile(r"[{;]").search(code, m.end())
        if body is None or body.group(0) == ";":
            continue
        end = closing(code, body.start())
        first = code.count("\n", 0, start)
        last = code.count("\n", 0, end)
        length = last - first + 1
        if length <= limit or is_test(lines, first) or excused(lines, first):
            continue
        found.append((length, path, first + 1, m.group(1)))
    return found


def main():
    # `fn-length.py src | head` ends quietly, as a Unix tool does.
    if hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    folder = sys.argv[1]
    limit = int(sys.argv[2]) if len(sys.argv) == 3 else 80
    found = []
    for root, dirs, names in os.walk(folder):
        dirs.sort()
        for name in sorted(names):
            if name.endswith(".rs") and name != "tests.rs":
                found += long_functions(os.path.join(root, name), limit)
    found.sort(key=lambda f: (-f[0], f[1], f[2]))
    for length, path, line, name in found:
        print(f"{path}:{line} {name} {length}")
    sys.exit(1 if found else 0)


if __name__ == "__main__":
    main()
