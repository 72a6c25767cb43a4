"""The broker CLI contract the other tests and the README rely on: `riptide broker` with no arguments
listens on 127.0.0.1:9092 and keeps its data in ./riptide-data, serves a client, and exits cleanly on
SIGTERM; `riptide broker --help` lists the documented flags."""

from __future__ import annotations

import signal
import subprocess
import time

import pytest

from e2e_util import check_log, kp_read_all, make_messages, port_accepts, port_in_use, unique_topic

FLAGS = ["--listen", "--advertise", "--data", "--memory", "--s3", "--s3-endpoint", "--node-id", "--zone",
         "--partitions", "--heartbeat-ms", "--session-timeout-ms"]


def test_broker_help_lists_flags(riptide_bin):
    p = subprocess.run([str(riptide_bin), "broker", "--help"], capture_output=True, timeout=30)
    out = p.stdout.decode(errors="replace")
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    missing = [f for f in FLAGS if f not in out]
    assert not missing, f"`riptide broker --help` does not mention {missing}:\n{out}"


def test_defaults_port_9092_local_data_dir_and_sigterm(harness, riptide_bin, tmp_path):
    if port_in_use(9092):
        pytest.fail("port 9092 is in use on 127.0.0.1; this test runs `riptide broker` with its defaults",
                    pytrace=False)
    from kafka import KafkaProducer

    cwd = tmp_path / "fresh-clone"
    cwd.mkdir()
    p = harness.raw([str(riptide_bin), "broker"], "broker-defaults", cwd=cwd)
    deadline = time.monotonic() + 30
    while not port_accepts(9092) and time.monotonic() < deadline:
        assert p.alive(), f"`riptide broker` exited with {p.returncode()}:\n{p.log_tail(40)}"
        time.sleep(0.1)
    assert port_accepts(9092), "`riptide broker` did not listen on 127.0.0.1:9092 within 30 s"

    topic = unique_topic("defaults")
    msgs = make_messages(200, nkeys=5, tag="df")
    prod = KafkaProducer(bootstrap_servers="127.0.0.1:9092", acks="all", enable_idempotence=False)
    acked = {}
    for i, (k, v) in enumerate(msgs):  # auto-creates the topic (1 partition by default)
        md = prod.send(topic, key=k, value=v).get(timeout=30)
        acked[i] = (md.partition, md.offset)
    prod.close(timeout=5)
    recs = kp_read_all("127.0.0.1:9092", topic, 1, timeout=30)
    res = check_log(msgs, recs, "df", acked=acked, exact=True, partitions=1)
    assert res.ok(), res.summary()

    data = cwd / "riptide-data"
    assert data.is_dir() and any(data.rglob("*")), f"no data under {data} (the default --data dir)"

    t = time.monotonic()
    p.kill(signal.SIGTERM, wait=15)
    assert not p.alive()
    assert p.returncode() == 0, f"exit code {p.returncode()} after SIGTERM:\n{p.log_tail(20)}"
    print(f"exited cleanly {time.monotonic() - t:.2f}s after SIGTERM")
