"""
The built wheel carries the twistd plugin (issue 12): a wheel of this source tree, installed
in a fresh virtualenv, gives a `twistd kestrel` that serves. The virtualenv takes the
server's dependencies from this test environment (a path file to its site-packages, whose own
path files are not read, so this checkout stays out of it): the test runs offline, and the
txkestrel in it is the wheel's alone.
"""

import shutil
import site
import subprocess
import sys
import venv
from pathlib import Path

import kestrel
from kestrel.load.process import KestrelProcess, write_config

SOURCE = Path(kestrel.__file__).resolve().parents[1]
# What a source distribution holds; the rest of a checkout (.venv, var, caches) stays out.
SOURCE_PARTS = ("kestrel", "twisted", "setup.cfg", "pyproject.toml", "README.md")


def build_wheel(directory: Path) -> Path:
    tree = directory / "source"
    for part in SOURCE_PARTS:
        origin = SOURCE / part
        if origin.is_dir():
            shutil.copytree(origin, tree / part, ignore=shutil.ignore_patterns("__pycache__", "dropin.cache"))
        else:
            shutil.copy2(origin, tree / part)
    dist = directory / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "--wheel-dir", str(dist), str(tree)],
        check=True, capture_output=True, timeout=300,
    )
    [wheel] = dist.glob("txkestrel-*.whl")
    return wheel


def fresh_virtualenv(directory: Path) -> Path:
    venv.create(directory, with_pip=True)
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
    found = subprocess.run(
        [str(python), "-c", "import kestrel, twisted.plugins.kestrel_plugin as plugin; print(kestrel.__file__); print(plugin.__file__)"],
        cwd=tmp_path, capture_output=True, text=True, check=True,
    ).stdout.split()
    assert all(path.startswith(str(tmp_path / "venv")) for path in found), found

    server_dir = tmp_path / "server"
    server_dir.mkdir()
    config = write_config(server_dir)
    twistd = [str(python), "-c", "from twisted.scripts.twistd import run; run()"]
    server = KestrelProcess(server_dir, config, command=[*twistd, "-n", "--pidfile=", "kestrel", "-c", str(config)]).start()
    try:
        client = server.client()
        client.set("jobs", b"from the wheel")
        assert client.get("jobs") == b"from the wheel"
    finally:
        server.kill()
