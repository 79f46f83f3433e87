"""
The `kestrel-load` command. The load tools' dependencies are an extra of the package
(`pip install 'txkestrel[load]'`), which a server needs not install: without them the
command says so in one line instead of a traceback.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    try:
        from kestrel.load import cli
    except ModuleNotFoundError as missing:
        print(f"kestrel-load: {missing.name.partition('.')[0]} is not installed; the load tools need pip install 'txkestrel[load]'", file=sys.stderr)
        return 2
    return cli.main(argv)


if __name__ == "__main__":
    sys.exit(main())
