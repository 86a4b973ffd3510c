#!/usr/bin/env python3
"""check_layers.py - the daemon's modules are in layers; check the includes.

    python3 tests/check_layers.py [DIR]       check DIR (default receiver/)
    python3 tests/check_layers.py --print-map print the map as README.md has it

A module is DIR/NAME.c and/or DIR/NAME.h.  LAYERS below is the map, lowest
layer first, and the only copy of it (README.md's is checked against
--print-map by tests/integration/test_layers.py).  A module may include the
headers of its own layer and of lower ones, never of a higher one: the push
side never includes the outbound side, while the outbound side may use the
push side's parsers and store (pulled messages are ingested like pushes).

Every `#include "NAME.h"` of every .c and .h file in DIR is read; <...>
includes and headers that are no module (generated ones) are skipped.  A
module of the map may be absent from DIR (not written yet), but every .c
and .h file in DIR must be in the map, so a new module has to be placed.
Prints one line per violation on stderr and exits 1, or a one-line summary
and exits 0.
"""

import argparse
import os
import re
import sys

LAYERS = [
    ("base", ["log", "util", "json", "toml", "config", "metrics", "db", "dbq", "migrate"]),
    ("push", ["form", "signature", "message", "delivery", "store", "ingest", "http"]),
    ("outbound", ["httpclient", "gateway", "tradeapi", "tokens", "reconcile", "webhook", "relay"]),
    ("top", ["server", "cli", "main"]),
]

INCLUDE = re.compile(r'^\s*#\s*include\s*"([^"]+)\.h"')
HERE = os.path.relpath(os.path.abspath(__file__), os.getcwd())


def layer_of():
    """{module: (rank, layer)}; refuses a module placed twice."""
    rank = {}
    for i, (layer, modules) in enumerate(LAYERS):
        for m in modules:
            if m in rank:
                raise SystemExit("%s: %s is in %s and %s" % (HERE, m, rank[m][1], layer))
            rank[m] = (i, layer)
    return rank


def format_map():
    """The map, one line per layer, as README.md shows it."""
    return "".join("%-10s %s\n" % (layer + ":", " ".join(mods)) for layer, mods in LAYERS)


def includes(path):
    """The names NAME of the `#include "NAME.h"` lines in PATH."""
    with open(path, encoding="utf-8", errors="replace") as f:
        return [m.group(1) for m in map(INCLUDE.match, f) if m]


def violations(directory):
    """(files checked, includes checked, [violation lines]) for DIRECTORY."""
    rank = layer_of()
    sources = sorted(f for f in os.listdir(directory) if f.endswith((".c", ".h")))
    found, checked = [], 0
    for name in sources:
        path = os.path.join(directory, name)
        module = name[:-2]
        if module not in rank:
            found.append("%s: %s is in no layer: add it to one of %s in %s (and README.md)"
                         % (path, module, ", ".join(l for l, _ in LAYERS), HERE))
            continue
        for header in includes(path):
            if header not in rank:
                continue  # not a module: a generated header
            checked += 1
            if rank[header][0] > rank[module][0]:
                found.append("%s includes %s.h: %s may not include %s"
                             % (path, header, rank[module][1], rank[header][1]))
    return len(sources), checked, found


def main(argv):
    p = argparse.ArgumentParser(description="Check the layers of the receiver's modules.")
    p.add_argument("--print-map", action="store_true", help="print the layer map and exit")
    p.add_argument("directory", nargs="?", default="receiver/")
    args = p.parse_args(argv)
    if args.print_map:
        sys.stdout.write(format_map())
        return 0
    if not os.path.isdir(args.directory):
        print("check_layers: %s: not a directory" % args.directory, file=sys.stderr)
        return 2
    n_files, n_includes, found = violations(args.directory)
    for line in found:
        print(line, file=sys.stderr)
    if found:
        return 1
    print("check-layers: %s: %d files, %d includes of modules, none upward (%s)"
          % (args.directory, n_files, n_includes, " < ".join(l for l, _ in LAYERS)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
