"""The examples of doc/sqs.md (boto3, the AWS CLI, curl), run against a server started with the doc's own config."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from kestrel.test.acceptance.sqs import SQS_LISTEN, cli_environment, endpoint

DOC = Path(__file__).resolve().parents[4] / "doc" / "sqs.md"
DOC_ENDPOINT = "http://127.0.0.1:9324"
DOC_LISTEN = '[server]\nsqs_listen = "tcp:9324:interface=127.0.0.1"\n'


def code_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), re.DOTALL)


def test_sqs_doc_examples_run(make_server, tmp_path, monkeypatch, capsys):
    (config,) = code_blocks("toml")
    assert config.startswith(DOC_LISTEN)
    (tmp_path / "billing.secret").write_text("billing-secret-of-the-doc\n")
    server = make_server(server=SQS_LISTEN, queues=config.removeprefix(DOC_LISTEN))
    url = endpoint(server)
    monkeypatch.chdir(tmp_path)

    (python,) = code_blocks("python")
    exec(python.replace(DOC_ENDPOINT, url), {})
    assert capsys.readouterr().out == "invoice 42 acme\n"

    environment = {**cli_environment(), "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    shells = code_blocks("sh")
    assert len(shells) == 2
    output = ""
    for script in shells:
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script.replace(DOC_ENDPOINT, url)],
            cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=60,
        )
        assert done.returncode == 0, done.stderr
        output += done.stdout
    # The CLI received what it sent; curl's JSON receive got what its form send sent.
    assert '"Body": "invoice 43"' in output
    assert '"Body":"invoice 44"' in output
