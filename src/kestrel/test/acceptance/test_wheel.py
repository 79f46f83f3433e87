"""
The built wheel carries the twistd plugin (issue 12): a wheel of this source tree, installed
in a fresh virtualenv, gives a `twistd kestrel` that serves, its admin dashboard included; so
does a plain editable install. The virtualenv takes the server's dependencies from this test
environment (a path file to its site-packages, whose own path files are not read, so this
checkout stays out of it): the test runs offline, and the txkestrel in it is the wheel's alone.
Both install the pure-Python build (KESTREL_PURE_PYTHON=1): what is checked here is what the
package carries; .ci/run checks that the install compiles the request path.
"""

import os
import shutil
import site
import subprocess
import sys
import venv
from pathlib import Path

import kestrel
from kestrel.load.process import KestrelProcess, write_config

SOURCE = Path(kestrel.__file__).resolve().parents[2]
# What a source distribution holds; the rest of a checkout (.venv, var, caches) stays out.
SOURCE_PARTS = ("src", "setup.py", "setup.cfg", "pyproject.toml", "README.md")
PURE = {**os.environ, "KESTREL_PURE_PYTHON": "1"}


def build_wheel(directory: Path) -> Path:
    tree = directory / "source"
    for part in SOURCE_PARTS:
        origin = SOURCE / part
        if origin.is_dir():
            shutil.copytree(origin, tree / part, ignore=shutil.ignore_patterns("__pycache__", "dropin.cache", "*.so"))
        else:
            shutil.copy2(origin, tree / part)
    dist = directory / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "--wheel-dir", str(dist), str(tree)],
        check=True, capture_output=True, timeout=300, env=PURE,
    )
    [wheel] = dist.glob("txkestrel-*.whl")
    return wheel


def fresh_virtualenv(directory: Path) -> Path:
    # Without a pip of its own: the test environment's pip and setuptools (through the path
    # file) install into it, as they are the versions this project builds with.
    venv.create(directory, with_pip=False)
    python = directory / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    (Path(purelib) / "test-dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    return python


def test_the_wheel_installs_a_twistd_plugin_that_serves(tmp_path):
    wheel = build_wheel(tmp_path)
    python = fresh_virtualenv(tmp_path / "venv")
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(wheel)],
                   check=True, capture_output=True, timeout=300)
    assert_serves(python, tmp_path, installed_in=tmp_path / "venv")


def test_a_plain_editable_install_gives_a_twistd_plugin_that_serves(tmp_path):
    """Without editable_mode=compat: the src layout lets setuptools put src/ on sys.path, where Twisted finds plugins."""
    python = fresh_virtualenv(tmp_path / "venv")
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "-e", str(SOURCE)],
                   check=True, capture_output=True, timeout=300, env=PURE)
    assert_serves(python, tmp_path, installed_in=SOURCE / "src")


def assert_serves(python: Path, tmp_path: Path, installed_in: Path) -> None:
    """txkestrel and its plugin come from `installed_in`, and the plugin's twistd kestrel serves."""
    found = subprocess.run(
        [str(python), "-c", "import kestrel, twisted.plugins.kestrel_plugin as plugin; print(kestrel.__file__); print(plugin.__file__)"],
        cwd=tmp_path, capture_output=True, text=True, check=True,
    ).stdout.split()
    assert all(path.startswith(str(installed_in)) for path in found), found

    server_dir = tmp_path / "server"
    server_dir.mkdir()
    config = write_config(server_dir)
    twistd = [str(python), "-c", "from twisted.scripts.twistd import run; run()"]
    server = KestrelProcess(server_dir, config, command=[*twistd, "-n", "--pidfile=", "kestrel", "-c", str(config)]).start()
    try:
        client = server.client()
        client.set("jobs", b"installed")
        assert client.get("jobs") == b"installed"
        # The dashboard's files are package data: the install must have brought them.
        page = server.admin("GET", "/")
        assert (page.status, page.content_type) == (200, "text/html; charset=utf-8")
        for asset in ("dashboard.js", "dashboard.css", "favicon.svg"):
            assert f"/dashboard/{asset}".encode() in page.body
            assert server.admin("GET", f"/dashboard/{asset}").status == 200
    finally:
        server.kill()
