"""test_docs.py - the documentation matches the code: every configuration
key config.c accepts is in README.md's table and in receiver.toml, and the
README names no key that does not exist."""

import os
import re
import unittest

from harness import REPO

SECTIONS = {"server_fields": "server", "database_fields": "database", "app_fields": "app",
            "upstream_fields": "upstream", "reconcile_fields": "reconcile",
            "log_fields": "log"}


def code_keys():
    with open(os.path.join(REPO, "receiver", "config.c")) as f:
        text = f.read()
    keys = set()
    for table, section in SECTIONS.items():
        m = re.search(r"static const struct field %s\[\] = \{(.*?)\n\};" % table, text, re.S)
        assert m, table
        for key in re.findall(r'(?:\.key = |\(\s*)"([a-z_]+)"', m.group(1)):
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
