"""Fixtures for riptide's end-to-end tests.

They build nothing: the binary comes from RIPTIDE_BIN, else target/release/riptide, else
target/debug/riptide (ci/test.sh builds the release binary first). Every process a test starts is
killed at teardown, and when a test fails the tail of each process's log is attached to the report.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from e2e_util import (  # noqa: E402
    CLUSTER,
    MOTO_ENV,
    Broker,
    Cluster,
    MotoServer,
    Proc,
    free_port,
    locate_binary,
    port_in_use,
)


@pytest.fixture(scope="session")
def riptide_bin() -> Path:
    b = locate_binary()
    if b is None:
        pytest.fail(
            "riptide binary not found: set RIPTIDE_BIN or build it with "
            "`cargo build --release -p riptide-cli` (looked for target/release/riptide and target/debug/riptide)",
            pytrace=False,
        )
    return b


class Harness:
    """Starts brokers and moto servers for one test; tears every one of them down afterwards."""

    def __init__(self, binary: Path, tmp: Path, node):
        self.binary = binary
        self.tmp = tmp
        self.procs = []
        self.node = node
        node._riptide_procs = self.procs
        self._n = 0

    def broker_env(self, extra: dict | None = None) -> dict:
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "info")
        env.setdefault("RUST_BACKTRACE", "1")
        env.setdefault("NO_COLOR", "1")
        if extra:
            env.update(extra)
        return env

    def broker(self, *, port: int | None = None, data: Path | None = None, memory: bool = False,
               s3: str | None = None, s3_endpoint: str | None = None, partitions: int | None = None,
               extra: list[str] | tuple = (), cwd: Path | None = None, env: dict | None = None,
               fixed_port: bool = False, wait: bool = True, ready_timeout: float = 30.0) -> Broker:
        """Start `riptide broker` on 127.0.0.1:port (a free port unless given).

        Store: --memory, --s3 (+ --s3-endpoint, moto credentials), or --data (default: <tmp>/data,
        shared by every broker of the test). The working directory is a fresh empty temp dir."""
        self._n += 1
        if port is None:
            port = free_port()
        elif fixed_port and port_in_use(port):
            pytest.fail(f"port {port} is already in use on 127.0.0.1; this test needs it free "
                        f"(the acceptance criteria name 127.0.0.1:9092/9093/9094). Stop whatever listens there.",
                        pytrace=False)
        args: list[str] = []
        benv = {}
        if memory:
            args.append("--memory")
        elif s3 is not None:
            args += ["--s3", s3]
            if s3_endpoint:
                args += ["--s3-endpoint", s3_endpoint]
            benv.update(MOTO_ENV)
        else:
            args += ["--data", str(data if data is not None else self.tmp / "data")]
        if partitions is not None:
            args += ["--partitions", str(partitions)]
        args += list(extra)
        if env:
            benv.update(env)
        if cwd is None:
            cwd = self.tmp / f"cwd-{port}-{self._n}"
        b = Broker(self.binary, port, args, self.tmp / f"broker-{port}.log", cwd, self.broker_env(benv))
        self.procs.append(b)
        b.start()
        if wait:
            b.wait_ready(ready_timeout)
        return b

    def raw(self, argv: list[str], name: str, cwd: Path | None = None, env: dict | None = None) -> Proc:
        """Start an arbitrary command (e.g. `riptide broker` with its defaults); killed at teardown."""
        cwd = cwd or self.tmp / f"cwd-{name}"
        p = Proc(name, argv, self.tmp / f"{name}.log", cwd, self.broker_env(env))
        self.procs.append(p)
        return p.start()

    def moto(self) -> MotoServer:
        try:
            import moto.server as _moto_server  # noqa: F401
            del _moto_server
        except ImportError as e:  # pragma: no cover - ci/test.sh installs it
            pytest.fail(f"moto[server] is not installed in {sys.executable} ({e}); run the tests with "
                        f"ci/test.sh, or with .venv-ci/bin/python after `bash ci/python-env.sh`", pytrace=False)
        port = free_port()
        m = MotoServer(port, self.tmp / f"moto-{port}.log", self.tmp / f"moto-cwd-{port}")
        self.procs.append(m)
        m.start()
        return m.wait_ready()

    def teardown(self):
        for p in reversed(self.procs):
            try:
                p.stop()
            except Exception as e:  # noqa: BLE001 - keep tearing the others down
                print(f"teardown of {p.name} failed: {e}", file=sys.stderr)


@pytest.fixture
def harness(riptide_bin, tmp_path, request):
    h = Harness(riptide_bin, tmp_path, request.node)
    try:
        yield h
    finally:
        h.teardown()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed and call.when in ("setup", "call"):
        for p in getattr(item, "_riptide_procs", []):
            status = "running" if p.alive() else f"exited with {p.returncode()}"
            rep.sections.append((f"{p.name} ({status}) log tail — full log: {p.log_path}", p.log_tail(60)))


@pytest.fixture
def cluster_factory(riptide_bin, tmp_path):
    """Makes three-broker clusters (ci/riptide-cluster.sh), each in its own directory; all are
    brought down at teardown."""
    made = []

    def make(broker_args: str = "", env: dict | None = None) -> Cluster:
        c = Cluster(riptide_bin, tmp_path / f"cluster-{len(made)}", broker_args, env)
        made.append(c)
        c.sh("up", "3")
        return c

    yield make
    for c in made:
        subprocess.run([str(CLUSTER), "down"], env=c.env, timeout=60)
