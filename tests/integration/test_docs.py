"""test_docs.py - the documentation matches the code: every configuration
key config.c accepts is in README.md's table and in receiver.toml, and the
README names no key that does not exist."""

import os
import re
import unittest

from harness import REPO


def code_keys():
    """Every "section.key" config.c accepts, read from its tables: sections[]
    names each TOML table and its field table, whose rows each start with
    the key (`{STRING("listen", ...` or `{.key = "listen", ...`)."""
    with open(os.path.join(REPO, "receiver", "config.c")) as f:
        text = f.read()
    m = re.search(r"static const struct section sections\[\] = \{(.*?)\n\};", text, re.S)
    assert m, "sections[]"
    rows = re.findall(r"^\s*\{", m.group(1), re.M)
    sections = re.findall(r'\{\s*\.name = "([a-z_]+)",\s*(?:TABLE|ARRAY)\((?:\w+,\s*)*(\w+)\)',
                          m.group(1))
    # A row this does not understand would hide its keys: fail instead.
    assert len(sections) == len(rows) > 0, m.group(1)
    keys = set()
    for section, table in sections:
        m = re.search(r"static const struct field %s\[\] = \{(.*?)\n\};" % table, text, re.S)
        assert m, table
        rows = re.findall(r"^\s*\{", m.group(1), re.M)
        names = re.findall(r'^\s*\{\s*(?:[A-Z_]+\(\s*|\.key = )"([a-z_]+)"', m.group(1), re.M)
        assert len(names) == len(rows) > 0, table
        for key in names:
            keys.add("%s.%s" % (section, key))
    return keys


class DocsTest(unittest.TestCase):

    def test_every_key_is_documented_and_nothing_else(self):
        keys = code_keys()
        self.assertGreater(len(keys), 20)
        with open(os.path.join(REPO, "README.md")) as f:
            readme = f.read()
        documented = set(re.findall(r"^\| `([a-z_]+\.[a-z_]+)` \|", readme, re.M))
        self.assertEqual(sorted(keys - documented), [], "keys missing from README.md")
        self.assertEqual(sorted(documented - keys), [], "README.md documents unknown keys")

    def test_receiver_toml_shows_every_key(self):
        with open(os.path.join(REPO, "receiver.toml")) as f:
            toml = f.read()
        missing = []
        for key in sorted(code_keys()):
            name = key.split(".", 1)[1]
            if not re.search(r"^#?\s*%s\s*=" % name, toml, re.M):
                missing.append(key)
        self.assertEqual(missing, [], "keys missing from receiver.toml")
