#!/usr/bin/env python3
"""run.py - run the integration tests.

    python3 tests/integration/run.py                 every test_*.py here
    python3 tests/integration/run.py test_ingest     one module (or Module.Class,
                                                     Module.Class.test_method)

Prints a line per test, then every failure with its traceback, and ends with
exactly one line "integration: N passed, N failed" (N counts test methods; a
test whose class or module could not be set up counts as failed).  Exit
status 1 when anything failed.  RECEIVER_BIN picks the binary (default
build/receiver).
"""

import os
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # no __pycache__ in the source tree

import harness  # noqa: E402  (registers the cleanup before any test runs)


def iter_tests(suite):
    for t in suite:
        if isinstance(t, unittest.TestSuite):
            yield from iter_tests(t)
        else:
            yield t


class Result(unittest.TestResult):
    """Counts outcomes per test method and prints a line for each."""

    def __init__(self):
        super().__init__()
        self.outcome = {}  # test id -> True (passed) / False (failed)
        self.fixture_errors = 0
        self._t0 = 0.0

    def startTest(self, test):
        super().startTest(test)
        self._t0 = time.monotonic()

    def _done(self, test, ok, word):
        if self.outcome.get(test.id()) is False:
            ok = False  # a failed subtest stays a failure
        else:
            self.outcome[test.id()] = ok
        print("%-5s %s (%.2fs)" % (word if ok or word != "ok" else "FAIL", test.id(),
                                   time.monotonic() - self._t0), flush=True)

    def addSuccess(self, test):
        super().addSuccess(test)
        self._done(test, True, "ok")

    def addError(self, test, err):
        super().addError(test, err)
        if not isinstance(test, unittest.TestCase):  # setUpClass, tearDownModule ...
            self.fixture_errors += 1
            print("ERROR %s" % test.id(), flush=True)
            return
        self._done(test, False, "ERROR")

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._done(test, False, "FAIL")

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._done(test, False, "SKIP")  # a skipped test proves nothing: failed

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self._done(test, True, "xfail")

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self._done(test, False, "XPASS")

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            if self.outcome.get(test.id()) is not False:
                print("FAIL  %s" % subtest.id(), flush=True)
            self.outcome[test.id()] = False


def main(argv):
    loader = unittest.TestLoader()
    if argv:
        suite = loader.loadTestsFromNames(argv)
    else:
        suite = loader.discover(HERE, pattern="test_*.py", top_level_dir=HERE)
    tests = [t.id() for t in iter_tests(suite)]
    result = Result()
    print("integration: %d tests, receiver %s" % (len(tests), harness.receiver_bin()),
          flush=True)
    try:
        suite.run(result)
    except KeyboardInterrupt:
        print("interrupted", flush=True)

    passed = sum(1 for t in tests if result.outcome.get(t) is True)
    failed = sum(1 for t in tests if result.outcome.get(t) is False)
    never_ran = [t for t in tests if t not in result.outcome]
    failed += len(never_ran)
    if result.fixture_errors and not never_ran:
        failed += result.fixture_errors  # e.g. tearDownClass: keep it visible

    for kind, items in (("ERROR", result.errors), ("FAIL", result.failures)):
        for test, tb in items:
            print("=" * 70)
            print("%s: %s" % (kind, test.id()))
            print("-" * 70)
            print(tb.rstrip())
    for test in result.unexpectedSuccesses:
        print("=" * 70)
        print("UNEXPECTED SUCCESS: %s" % test.id())
    for tid in never_ran:
        print("=" * 70)
        print("NOT RUN (interrupted, or its class or module failed to set up): %s" % tid)
    if failed:
        harness.keep_tmp()
        print("receiver configs and logs kept in %s" % harness.WORK)
    print("integration: %d passed, %d failed" % (passed, failed), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
