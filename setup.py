"""
Builds txkestrel with the request path compiled by mypyc (issue 11), unless
KESTREL_PURE_PYTHON=1 is set: then it is the pure-Python package, which every compiled
module falls back to (the same .py files, imported when no extension module shadows them).

    pip install .                          # compiled: needs a C compiler and Python's headers
    KESTREL_PURE_PYTHON=1 pip install .    # pure Python
    python setup.py build_ext --inplace    # compiled in place in src/ (delete src/**/*.so to undo)

Everything else is in setup.cfg.
"""

import os
import shutil
import sys
import sysconfig

from setuptools import setup

# The modules of a memcache request's cycle: parse, session, collection, queue, journal
# append and record encoding, latency histograms, the reply write (and its envelope check).
COMPILED = [
    "src/kestrel/protocols/memcache.py",
    "src/kestrel/envelope.py",
    "src/kestrel/protocols/connection.py",
    "src/kestrel/protocols/sending.py",
    "src/kestrel/session.py",
    "src/kestrel/server.py",
    "src/kestrel/collection.py",
    "src/kestrel/queue.py",
    "src/kestrel/head_list.py",
    "src/kestrel/read_behind.py",
    "src/kestrel/upkeep.py",
    "src/kestrel/waiters.py",
    "src/kestrel/latency.py",
    "src/kestrel/polling.py",
    "src/kestrel/journal/journal.py",
    "src/kestrel/journal/writer.py",
    "src/kestrel/journal/records.py",
]


def can_compile() -> bool:
    """A C compiler and Python's headers, without which the package installs as pure Python."""
    compiler = (os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc").split()[0]
    headers = os.path.join(sysconfig.get_paths()["include"], "Python.h")
    return shutil.which(compiler) is not None and os.path.exists(headers)


def ext_modules():
    if os.environ.get("KESTREL_PURE_PYTHON", "") not in ("", "0"):
        return []
    if not can_compile():
        print("txkestrel: no C compiler or no Python headers: installing pure Python "
              "(Debian: apt-get install build-essential python3-dev)", file=sys.stderr)
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:  # a build without isolation, in an environment without mypy
        print("txkestrel: no mypyc (pip install mypy): installing pure Python", file=sys.stderr)
        return []

    # Modules outside COMPILED are type-checked only as far as the compiled ones use them.
    # group_name: the shared runtime module is kestrel__mypyc, not one named by a hash.
    return mypycify(["--follow-imports=silent", "--ignore-missing-imports", *COMPILED], opt_level="3", group_name="kestrel")


setup(ext_modules=ext_modules())
