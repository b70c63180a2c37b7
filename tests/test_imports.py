"""The library never imports streamlit, and every module imports on its own."""
import importlib
import pkgutil
import re
import subprocess
import sys

import explorer


def test_explorer_imports_without_streamlit():
    code = ("import sys, pkgutil, importlib, explorer\n"
            "for m in pkgutil.walk_packages(explorer.__path__, 'explorer.'):\n"
            "    if m.name != 'explorer.__main__':\n"
            "        importlib.import_module(m.name)\n"
            "bad = [m for m in sys.modules if m == 'streamlit' or m.startswith('streamlit.')]\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_no_library_module_has_a_streamlit_import_statement():
    pattern = re.compile(r"^\s*(import\s+streamlit|from\s+streamlit)", re.MULTILINE)
    for m in pkgutil.walk_packages(explorer.__path__, "explorer."):
        spec = importlib.util.find_spec(m.name)
        src = open(spec.origin, encoding="utf-8").read()
        assert not pattern.search(src), m.name
