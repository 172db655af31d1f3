#!/usr/bin/env python3
"""Checks every #include of the rooms against docs/architecture.md's table.

A room (a top-level folder with C++ files) may include only the rooms its row lists
under "may include" (and itself). A folder with C++ files that the table does not list
is an error too, so a new room must be drawn before it is used. Tests, benches, fuzz
targets and examples may include anything. Exit status 0 when all is as drawn.

    scripts/check_rooms.py [ROOT]
"""
import os
import re
import sys

FREE = {"tests", "bench", "fuzz", "examples", "docs", "scripts", "models", "deploy"}
ROW = re.compile(r"^\|\s*`([a-z_]+)/`\s*\|.*\|\s*([^|]*?)\s*\|\s*$")
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^/"]+)/[^"]+"', re.M)


def read_table(path):
    allowed = {}
    for line in open(path, encoding="utf-8"):
        m = ROW.match(line.strip())
        if m:
            cell = m.group(2)
            rooms = [] if cell in ("—", "-", "") else [r.strip() for r in cell.split(",")]
            allowed[m.group(1)] = set(rooms)
    return allowed


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..")
    table = os.path.join(root, "docs", "architecture.md")
    allowed = read_table(table)
    if not allowed:
        print("check_rooms: no room table in %s" % table)
        return 1
    problems = []
    for room in allowed:
        for other in allowed[room]:
            if other not in allowed:
                problems.append("%s may include '%s', which is not a room" % (room, other))
    for entry in sorted(os.listdir(root)):
        path = os.path.join(root, entry)
        if not os.path.isdir(path) or entry.startswith((".", "build")) or entry in FREE:
            continue
        sources = []
        for dirpath, _, files in os.walk(path):
            sources += [os.path.join(dirpath, f) for f in files if f.endswith((".h", ".cpp"))]
        if not sources:
            continue
        if entry not in allowed:
            problems.append("%s/ holds C++ files but is not a room in %s" % (entry, table))
            continue
        for source in sorted(sources):
            text = open(source, encoding="utf-8", errors="replace").read()
            for m in INCLUDE.finditer(text):
                target = m.group(1)
                if target == entry or target not in allowed and target not in FREE:
                    continue  # its own headers, or a library's ("CLI/CLI.hpp")
                if target not in allowed[entry]:
                    line = text.count("\n", 0, m.start()) + 1
                    problems.append("%s:%d includes %s/, which %s/ may not (allowed: %s)"
                                    % (os.path.relpath(source, root), line, target, entry,
                                       ", ".join(sorted(allowed[entry])) or "nothing"))
    for p in problems:
        print("check_rooms: " + p)
    print("check_rooms: %d rooms, %s" % (len(allowed),
                                         "%d problems" % len(problems) if problems else "ok"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
