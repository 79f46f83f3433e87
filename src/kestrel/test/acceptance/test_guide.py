"""The examples of doc/guide.md, run against a server started with the guide's own config."""

import re
from pathlib import Path

GUIDE = Path(__file__).resolve().parents[4] / "doc" / "guide.md"


def code_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", GUIDE.read_text(), re.DOTALL)


def test_guide_examples_run(make_server):
    kestrel = make_server(queues="\n".join(code_blocks("toml")))
    namespace: dict = {}
    for block in code_blocks("python"):
        exec(block.replace("127.0.0.1:22133", f"127.0.0.1:{kestrel.memcache_port}"), namespace)
    assert len(code_blocks("python")) >= 8
