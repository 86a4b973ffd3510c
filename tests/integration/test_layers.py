"""test_layers.py - tests/check_layers.py, the layer check, on fake trees.

Each test writes a few .c/.h files into a temporary directory and runs the
checker on it: a tree whose includes all go down or sideways passes, one
upward include (base -> push, push -> outbound) or a module outside the
map fails naming the file and the header, and README.md shows the map the
checker prints.  The real receiver/ is checked by `make check-layers`."""

import os
import shutil
import subprocess
import sys
import tempfile
import unittest

from harness import REPO

CHECKER = os.path.join(REPO, "tests", "check_layers.py")


def check(*args):
    return subprocess.run([sys.executable, CHECKER] + list(args), capture_output=True,
                          text=True, timeout=30)


class LayersTest(unittest.TestCase):

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="receiver-layers-")
        self.addCleanup(shutil.rmtree, self.dir)

    def tree(self, files):
        """FILES: {name: [included header, ...]}, written as C sources."""
        for name, headers in files.items():
            with open(os.path.join(self.dir, name), "w") as f:
                f.write("/* %s */\n#include <stdio.h>\n" % name)
                f.writelines('#include "%s"\n' % h for h in headers)

    def assertFails(self, r, line):
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertEqual(r.stdout, "")
        self.assertIn(line, r.stderr.splitlines())

    def test_clean_tree_passes(self):
        self.tree({"util.c": ["util.h", "log.h"], "util.h": [], "log.h": [],
                   "store.c": ["store.h", "db.h", "message.h", "migrations.h"],
                   "store.h": ["delivery.h"], "tradeapi.c": ["store.h", "httpclient.h"],
                   "main.c": ["cli.h", "server.h", "config.h"]})
        r = check(self.dir)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stderr, "")
        self.assertEqual(len(r.stdout.splitlines()), 1, r.stdout)
        self.assertIn(" 7 files,", r.stdout)

    def test_base_including_push_fails(self):
        self.tree({"metrics.c": ["metrics.h", "log.h", "http.h"], "metrics.h": []})
        r = check(self.dir)
        self.assertFails(r, "%s/metrics.c includes http.h: base may not include push"
                         % self.dir)
        self.assertEqual(len(r.stderr.splitlines()), 1, r.stderr)

    def test_push_including_outbound_fails(self):
        self.tree({"store.c": ["store.h", "reconcile.h"], "store.h": ["db.h"],
                   "http.h": ["tradeapi.h"]})
        r = check(self.dir)
        self.assertFails(r, "%s/store.c includes reconcile.h: push may not include outbound"
                         % self.dir)
        self.assertFails(r, "%s/http.h includes tradeapi.h: push may not include outbound"
                         % self.dir)

    def test_module_outside_the_map_fails(self):
        self.tree({"log.c": [], "frobnicator.c": ["log.h"]})
        r = check(self.dir)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        lines = r.stderr.splitlines()
        self.assertEqual(len(lines), 1, r.stderr)
        self.assertTrue(lines[0].startswith("%s/frobnicator.c: frobnicator is in no layer"
                                            % self.dir), lines[0])

    def test_readme_shows_the_map(self):
        r = check("--print-map")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(r.stdout.splitlines()), 4, r.stdout)
        with open(os.path.join(REPO, "README.md")) as f:
            readme = f.read()
        self.assertIn("\n```\n" + r.stdout + "```\n", readme)


if __name__ == "__main__":
    unittest.main()
