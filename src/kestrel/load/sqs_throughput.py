"""
The same boto3 loop against txkestrel's SQS API and against ElasticMQ, and its memcache
equivalent against txkestrel's memcache port (doc/benchmarks.md, issue 14).

The loop: send N messages one SendMessage at a time, then take them all back with
ReceiveMessage (10 at a time) and DeleteMessageBatch. Over memcache: N sets, then N reliable
reads confirmed one by one (`get q/close/open`), Kestrel's receive-and-delete. Each server is
fresh, pinned to core 0 (`kestrel.load.pinned.SERVER_CORE`), this process to core 1; the
servers take turns, and the report gives every run and the medians, with the server's CPU time
per message. boto3's own cost (about a millisecond of client CPU a call) bounds the SQS figures:
they say what an SDK user sees, the memcache ones what the server can do.

    python -m kestrel.load.sqs_throughput [--messages 2000] [--repeats 3] \\
        [--elasticmq-jar elasticmq-server-0.7.1.jar] > report.json

ElasticMQ 0.7.1 is the only build on a registry this machine reaches (npm: `npm pack
elasticmq`, a jar inside); it speaks SQS's query protocol only (it predates the JSON one), so it
is driven by boto3 with SQS's query-era model (src/kestrel/test/data/sqs-query), as txkestrel is
in the "query" rows. It needs a JRE (Debian's default-jre-headless).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qs

from kestrel.load.pinned import LOAD_CORE, ListeningProcess, PinnedServer, Txkestrel, free_port

HOST = "127.0.0.1"
QUEUE = "sqs_throughput"
BODY = "x" * 64
ACCESS_KEY = "AKIDBENCH"
SECRET = "benchmark-secret"
QUERY_MODEL = Path(__file__).resolve().parents[1] / "test" / "data" / "sqs-query"
# Java 17 refuses the reflection ElasticMQ 0.7.1's HTTP layer (spray) does, unless opened.
JAVA_OPENS = ["--add-opens", "java.base/java.util.regex=ALL-UNNAMED", "--add-opens", "java.base/java.lang=ALL-UNNAMED"]


def txkestrel_sqs(directory: Path) -> Txkestrel:
    """`twistd kestrel` on an empty spool with its SQS listener (one application, every grant) and memcache."""
    return Txkestrel(
        directory, "never", server='sqs_listen = "tcp:0:interface=127.0.0.1"',
        tables=f'[apps.bench]\naccess_key = "{ACCESS_KEY}"\nsecret = "{SECRET}"\nread = ["*"]\nwrite = ["*"]\nadmin = ["*"]\n',
    )


class ElasticMQ(ListeningProcess):
    def __init__(self, jar: Path, log: Path):
        self.port = free_port()
        properties = [
            f"-Dnode-address.host={HOST}", f"-Dnode-address.port={self.port}",
            f"-Drest-sqs.bind-hostname={HOST}", f"-Drest-sqs.bind-port={self.port}",
        ]
        super().__init__(["java", *JAVA_OPENS, *properties, "-jar", str(jar)], log, "ElasticMQ")


def boto3_client(port: int, wire: str, to_queue_url: bool = False) -> Any:
    import botocore.session
    from botocore.config import Config

    session = botocore.session.get_session()
    if wire == "query":
        session.get_component("data_loader").search_paths.insert(0, str(QUERY_MODEL))
    client = session.create_client(
        "sqs", region_name="us-east-1", endpoint_url=f"http://{HOST}:{port}",
        aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET,
        config=Config(retries={"total_max_attempts": 1}),
    )
    if client.meta.service_model.protocol != wire:
        raise SystemExit(f"botocore speaks {client.meta.service_model.protocol}, not {wire}")
    if to_queue_url:
        client.meta.events.register("before-sign.sqs", post_to_queue_url)
    return client


def post_to_queue_url(request: Any, **_: Any) -> None:
    """
    Send a call that names a queue to the queue's URL, as the query-era SDKs did: ElasticMQ
    0.7.1 answers 404 to one posted to `/` with a `QueueUrl` parameter, as today's SDKs send it.
    """
    body = request.body or b""
    queue_url = parse_qs(body.decode() if isinstance(body, bytes) else body).get("QueueUrl")
    if queue_url:
        request.url = queue_url[0]


def timed(work: Callable[[], None], messages: int, server: PinnedServer) -> dict[str, float]:
    started, cpu, server_cpu = time.perf_counter(), time.process_time(), server.cpu_seconds()
    work()
    elapsed = time.perf_counter() - started
    return {
        "messages_per_second": round(messages / elapsed, 1),
        "client_cpu_us_per_message": round(1e6 * (time.process_time() - cpu) / messages, 1),
        "server_cpu_us_per_message": round(1e6 * (server.cpu_seconds() - server_cpu) / messages, 1),
    }


def sqs_loop(client: Any, messages: int, server: PinnedServer) -> dict[str, dict[str, float]]:
    url = client.create_queue(QueueName=QUEUE)["QueueUrl"]

    def send() -> None:
        for _ in range(messages):
            client.send_message(QueueUrl=url, MessageBody=BODY)

    def receive_and_delete() -> None:
        left = messages
        while left:
            received = client.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
            if not received:
                raise RuntimeError(f"{left} messages missing")
            entries = [{"Id": str(index), "ReceiptHandle": message["ReceiptHandle"]} for index, message in enumerate(received)]
            deleted = client.delete_message_batch(QueueUrl=url, Entries=entries)
            if deleted.get("Failed"):
                raise RuntimeError(f"delete failed: {deleted['Failed']}")
            left -= len(received)

    return {"send": timed(send, messages, server), "receive_delete": timed(receive_and_delete, messages, server)}


def memcache_loop(port: int, messages: int, server: PinnedServer) -> dict[str, dict[str, float]]:
    from pymemcache.client.base import Client

    client = Client((HOST, port))
    body = BODY.encode()

    def send() -> None:
        for _ in range(messages):
            client.set(QUEUE, body, noreply=False)  # each set waits for its STORED, as each SendMessage does

    def receive_and_delete() -> None:
        # Each read confirms the one before (Kestrel's /close/open); the last is confirmed alone.
        for _ in range(messages):
            if client.get(f"{QUEUE}/close/open") is None:
                raise RuntimeError("a message is missing")
        client.get(f"{QUEUE}/close")

    try:
        return {"send": timed(send, messages, server), "receive_delete": timed(receive_and_delete, messages, server)}
    finally:
        client.close()


def runs(options: argparse.Namespace) -> list[dict]:
    work = Path(tempfile.mkdtemp(prefix="kestrel-sqs-throughput-"))
    kinds = ["txkestrel json", "txkestrel query", "txkestrel memcache"] + (["elasticmq query"] if options.elasticmq_jar else [])
    results = []
    for repeat in range(options.repeats):
        for kind in kinds[repeat % len(kinds):] + kinds[:repeat % len(kinds)]:
            server_name, _, wire = kind.partition(" ")
            if server_name == "elasticmq":
                server: PinnedServer = ElasticMQ(options.elasticmq_jar, work / "elasticmq.log")
            else:
                server = txkestrel_sqs(work / "kestrel")
            with server:
                if wire == "memcache":
                    figures = memcache_loop(server.port, options.messages, server)
                else:
                    port = server.server.sqs_port if isinstance(server, Txkestrel) else server.port
                    figures = sqs_loop(boto3_client(port, wire, to_queue_url=server_name == "elasticmq"), options.messages, server)
            results.append({"kind": kind, "repeat": repeat, "figures": figures})
            print(f"repeat {repeat + 1}/{options.repeats} {kind}: {figures}", file=sys.stderr, flush=True)
    return results


def medians(results: list[dict]) -> dict[str, dict[str, dict[str, float]]]:
    table: dict[str, dict[str, dict[str, float]]] = {}
    for kind in dict.fromkeys(result["kind"] for result in results):
        mine = [result["figures"] for result in results if result["kind"] == kind]
        table[kind] = {
            phase: {figure: statistics.median(run[phase][figure] for run in mine) for figure in mine[0][phase]}
            for phase in mine[0]
        }
    return table


def markdown(table: dict[str, dict[str, dict[str, float]]]) -> str:
    lines = [
        "| client -> server | send, messages/s | receive + delete, messages/s | server CPU per message, send / receive+delete |",
        "| --- | --- | --- | --- |",
    ]
    for kind, phases in table.items():
        send, take = phases["send"], phases["receive_delete"]
        lines.append(
            f"| {kind} | {send['messages_per_second']:,.0f} | {take['messages_per_second']:,.0f} "
            f"| {send['server_cpu_us_per_message']:,.0f} / {take['server_cpu_us_per_message']:,.0f} us |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--elasticmq-jar", type=Path, help="ElasticMQ's server jar (npm pack elasticmq); without it, txkestrel only")
    options = parser.parse_args(argv)
    os.sched_setaffinity(0, {int(LOAD_CORE)})
    results = runs(options)
    table = medians(results)
    print(markdown(table), file=sys.stderr)
    json.dump({"messages": options.messages, "runs": results, "medians": table}, sys.stdout, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
