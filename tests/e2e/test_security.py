"""TLS and SASL on `riptide broker` (issue 18): kcat, kafka-python and confluent-kafka produce and
consume with TLS + SCRAM-SHA-512 and with SASL/PLAIN; wrong credentials are refused, and each
library's own exception (or error) for it is asserted; a plaintext client at a TLS port and a TLS
client at a plaintext port get a clear error and nothing served, and the broker serves on.

The test makes its own CA and a broker certificate (SAN localhost and 127.0.0.1) with
`cryptography`, and the users file with `riptide sasl-user`.
"""

from __future__ import annotations

import datetime
import logging
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from e2e_util import api_versions_v0, free_port, unique_topic

USER, PASSWORD = "alice", "wonder-land-42"


def make_certs(d: Path) -> dict[str, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    import ipaddress

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "riptide e2e CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False,
                                       encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    out = {"ca": d / "ca.pem", "cert": d / "broker.pem", "key": d / "broker.key"}
    out["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    out["cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    out["key"].write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                             serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()))
    return out


def users_file(riptide_bin: Path, d: Path) -> Path:
    env = dict(os.environ, RIPTIDE_SASL_PASSWORD=PASSWORD)
    r = subprocess.run([str(riptide_bin), "sasl-user", USER], capture_output=True, env=env,
                       timeout=30)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    toml = r.stdout.decode()
    assert PASSWORD not in toml and "scram-sha-512" in toml, toml
    path = d / "users.toml"
    path.write_text(toml)
    return path


def secure_broker(harness, riptide_bin, *, tls: bool, sasl: bool):
    """A broker advertising localhost:PORT, with TLS and/or SASL; (broker, certs)."""
    certs = make_certs(harness.tmp)
    port = free_port()
    extra = ["--advertise", f"localhost:{port}", "--partitions", "2"]
    env = {}
    if tls:
        extra += ["--tls-cert", str(certs["cert"]), "--tls-key", str(certs["key"]),
                  "--tls-ca", str(certs["ca"])]
    if sasl:
        extra += ["--sasl-users", str(users_file(riptide_bin, harness.tmp))]
        env = {"RIPTIDE_SASL_USERNAME": USER, "RIPTIDE_SASL_PASSWORD": PASSWORD}
    b = harness.broker(port=port, memory=True, extra=extra, env=env)
    return b, certs


def bootstrap(b) -> str:
    return f"localhost:{b.port}"


# -- per-library settings ---------------------------------------------------------------------

def rdkafka_conf(b, certs, mechanism: str, password: str = PASSWORD) -> dict[str, str]:
    tls = mechanism != "PLAIN"
    return {
        "bootstrap.servers": bootstrap(b),
        "security.protocol": "SASL_SSL" if tls else "SASL_PLAINTEXT",
        "sasl.mechanisms": mechanism,
        "sasl.username": USER,
        "sasl.password": password,
        **({"ssl.ca.location": str(certs["ca"])} if tls else {}),
    }


def kafka_python_conf(b, certs, mechanism: str, password: str = PASSWORD) -> dict:
    tls = mechanism != "PLAIN"
    return dict(bootstrap_servers=bootstrap(b),
                security_protocol="SASL_SSL" if tls else "SASL_PLAINTEXT",
                sasl_mechanism=mechanism, sasl_plain_username=USER, sasl_plain_password=password,
                **({"ssl_cafile": str(certs["ca"])} if tls else {}))


def kcat_bin() -> str:
    k = shutil.which("kcat") or shutil.which("kafkacat")
    if not k:
        pytest.fail("kcat is not installed (ci/test.sh installs it)", pytrace=False)
    return k


def kcat(conf: dict[str, str], *args: str, stdin: bytes | None = None, timeout: float = 60):
    argv = [kcat_bin(), "-b", conf["bootstrap.servers"]]
    for k, v in conf.items():
        if k != "bootstrap.servers":
            argv += ["-X", f"{k}={v}"]
    return subprocess.run(argv + list(args), input=stdin, capture_output=True, timeout=timeout)


# TLS + SCRAM-SHA-512, and SASL/PLAIN (over plaintext: PLAIN's own test, no TLS).
MODES = [pytest.param("SCRAM-SHA-512", True, id="tls-scram-sha-512"),
         pytest.param("PLAIN", False, id="sasl-plain")]


@pytest.mark.parametrize("mechanism,tls", MODES)
def test_three_clients_produce_and_consume(harness, riptide_bin, mechanism, tls):
    b, certs = secure_broker(harness, riptide_bin, tls=tls, sasl=True)

    # kcat
    conf = rdkafka_conf(b, certs, mechanism)
    topic = unique_topic("kcat-sec")
    values = [f"kcat-{i}" for i in range(200)]
    p = kcat(conf, "-P", "-t", topic, "-X", "acks=all",
             stdin="".join(v + "\n" for v in values).encode())
    assert p.returncode == 0, p.stderr.decode(errors="replace")[-2000:]
    c = kcat(conf, "-C", "-t", topic, "-o", "beginning", "-e", "-f", "%s\n")
    assert c.returncode == 0, c.stderr.decode(errors="replace")[-2000:]
    assert sorted(c.stdout.decode().split()) == sorted(values)

    # confluent-kafka
    from confluent_kafka import Consumer, Producer
    topic = unique_topic("ck-sec")
    prod = Producer({**conf, "acks": "all", "enable.idempotence": True})
    for i in range(200):
        prod.produce(topic, value=f"ck-{i}".encode(), partition=i % 2)
    assert prod.flush(60) == 0
    del prod
    cons = Consumer({**conf, "group.id": unique_topic("g"), "auto.offset.reset": "earliest"})
    cons.subscribe([topic])
    got = []
    end = time.monotonic() + 60
    while len(got) < 200 and time.monotonic() < end:
        m = cons.poll(1.0)
        if m is not None and m.error() is None:
            got.append(m.value().decode())
    cons.close()
    assert sorted(got) == sorted(f"ck-{i}" for i in range(200))

    # kafka-python
    from kafka import KafkaConsumer, KafkaProducer
    topic = unique_topic("kp-sec")
    kconf = kafka_python_conf(b, certs, mechanism)
    kp = KafkaProducer(acks="all", **kconf)
    for i in range(200):
        kp.send(topic, value=f"kp-{i}".encode())
    kp.flush(60)
    kp.close()
    kc = KafkaConsumer(topic, auto_offset_reset="earliest", consumer_timeout_ms=10_000, **kconf)
    got = [m.value.decode() for m in kc]
    kc.close()
    assert sorted(got) == sorted(f"kp-{i}" for i in range(200))


@pytest.mark.parametrize("mechanism,tls", MODES)
def test_wrong_credentials_are_refused_by_every_client(harness, riptide_bin, mechanism, tls,
                                                       caplog):
    b, certs = secure_broker(harness, riptide_bin, tls=tls, sasl=True)
    wrong = "not-" + PASSWORD

    # kcat: metadata fails, naming the authentication failure.
    p = kcat(rdkafka_conf(b, certs, mechanism, wrong), "-L", "-m", "5", timeout=30)
    err = p.stderr.decode(errors="replace") + p.stdout.decode(errors="replace")
    assert p.returncode != 0, err
    assert "Authentication failed" in err or "SASL authentication error" in err, err

    # confluent-kafka: the error callback gets _AUTHENTICATION.
    from confluent_kafka import KafkaError, Producer
    errors = []
    prod = Producer({**rdkafka_conf(b, certs, mechanism, wrong), "error_cb": errors.append})
    for _ in range(30):
        if errors:
            break
        prod.poll(0.5)
    assert any(e.code() == KafkaError._AUTHENTICATION for e in errors), errors

    del prod  # stops its retries

    # kafka-python: each login attempt fails with SaslAuthenticationFailedError (logged by its
    # connection), and the producer then raises KafkaTimeoutError: it could not bootstrap.
    from kafka import KafkaProducer
    from kafka.errors import KafkaTimeoutError
    with caplog.at_level(logging.ERROR, logger="kafka"):
        with pytest.raises(KafkaTimeoutError, match="bootstrap"):
            KafkaProducer(request_timeout_ms=5000, max_block_ms=5000,
                          **kafka_python_conf(b, certs, mechanism, wrong))
    assert "SaslAuthenticationFailedError" in caplog.text, caplog.text[-3000:]
    log = b.log_tail(400)
    assert "SASL login refused" in log, log
    assert wrong not in log


def test_tls_and_plaintext_mismatches_are_closed_with_a_clear_error(harness, riptide_bin):
    tls_b, certs = secure_broker(harness, riptide_bin, tls=True, sasl=False)
    plain_b = harness.broker(memory=True)

    # A plaintext client at the TLS port: nothing served, the broker says why.
    with pytest.raises(Exception):
        api_versions_v0(tls_b.port, timeout=5.0)
    # Garbage instead of a ClientHello.
    with socket.create_connection(("127.0.0.1", tls_b.port), timeout=5) as s:
        s.sendall(b"\x16\x03\x01\xff\xff" + os.urandom(64))
        s.settimeout(5)
        try:
            rest = s.recv(4096)
        except (ConnectionResetError, TimeoutError, socket.timeout):
            rest = b""
        assert b"ApiVersions" not in rest
    # A TLS client at the plaintext port: the handshake fails on the client.
    import ssl
    ctx = ssl.create_default_context(cafile=str(certs["ca"]))
    with pytest.raises((ssl.SSLError, ConnectionResetError, OSError)):
        with socket.create_connection(("127.0.0.1", plain_b.port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                s.recv(1)
    # Both brokers serve on: TLS ApiVersions through the real handshake, and plaintext.
    with socket.create_connection(("127.0.0.1", tls_b.port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            # ApiVersions v0, correlation id 7, no client id.
            s.sendall(b"\x00\x00\x00\x0a\x00\x12\x00\x00\x00\x00\x00\x07\xff\xff")
            head = s.recv(4)
            assert len(head) == 4, "no ApiVersions reply over TLS"
    assert api_versions_v0(plain_b.port, timeout=5.0)[0] == 0
    log = tls_b.log_tail(200)
    assert "TLS handshake failed" in log, log


def test_certify_chaos_against_three_tls_scram_brokers(riptide_bin, tmp_path, cluster_factory):
    """certify through its proxy, which speaks TLS and logs in with SCRAM-SHA-512 on every
    connection to the brokers, while it partitions, slows and cuts links and kills nodes."""
    from e2e_util import certify, hooks_flags
    import json

    d = tmp_path / "sec"
    d.mkdir()
    certs = make_certs(d)
    users = users_file(riptide_bin, d)
    creds = {"RIPTIDE_SASL_USERNAME": USER, "RIPTIDE_SASL_PASSWORD": PASSWORD}
    c = cluster_factory(
        f"--tls-cert {certs['cert']} --tls-key {certs['key']} --tls-ca {certs['ca']} "
        f"--sasl-users {users}", env=creds)
    out = tmp_path / "report"
    secure = ["--security-protocol", "SASL_SSL", "--sasl-mechanism", "SCRAM-SHA-512",
              "--ca-file", str(certs["ca"])]
    r = certify(riptide_bin, c.bootstrap(), out, "--scenario", "chaos", "--seed", "1",
                "--duration", "45s", "--recovery", "12s", *secure, *hooks_flags(), env=c.env)
    assert r.returncode == 0, f"exit {r.returncode}\n{r.stdout}\n{r.stderr[-3000:]}\n{c.logs()}"
    rep = json.loads((out / "report.json").read_text())
    assert rep["verdict"] == "pass"
    assert (rep["security_protocol"], rep["sasl_mechanism"]) == ("SASL_SSL", "SCRAM-SHA-512")
    kinds = {a["fault"]["kind"] for a in rep["faults_applied"]}
    assert kinds & {"partition", "link-slow", "replies-lost", "connections-cut"}, kinds
    assert rep["report"]["summary"]["by_f"]["send"]["ok"] > 500
    md = (out / "report.md").read_text()
    assert "SASL_SSL (SCRAM-SHA-512)" in md
    for f in out.iterdir():
        assert PASSWORD not in f.read_text(errors="replace"), f"the password is in {f.name}"
    assert PASSWORD not in r.stdout + r.stderr

    # Wrong credentials: a clear error before any workload, exit 2 (could not run).
    bad = dict(c.env, RIPTIDE_SASL_PASSWORD="not-" + PASSWORD)
    r = certify(riptide_bin, c.bootstrap(), tmp_path / "bad", "--duration", "30s", *secure,
                env=bad, timeout=120)
    assert r.returncode == 2, f"exit {r.returncode}\n{r.stdout}\n{r.stderr[-3000:]}"
    assert "Authentication failed" in r.stderr and "not-" + PASSWORD not in r.stderr, r.stderr[-2000:]
