"""Real etcd members on loopback for the tests: one or three, killed, stopped and restarted.

    with etcd_cluster(3) as cluster:
        store = EtcdStore(EtcdOptions(tuple(cluster.endpoints)))
        cluster.members[0].kill()        # SIGKILL: the client must fail over
        cluster.members[0].start()       # same data dir and ports: it rejoins
        cluster.stop(); cluster.start()  # the whole cluster down, then back

Each member listens on three free loopback ports (client, peer, metrics) chosen at start;
the health wait uses the plain-HTTP metrics listener's /health, so that it works the same
for a member serving its clients over TLS with client certificates. Data dirs live on
/dev/shm when there is one: etcd 3.4 has no --unsafe-no-fsync (3.5 added it) and fsync on
a tmpfs costs nothing. Heartbeat 50 ms and election timeout 500 ms (etcd's defaults are
100/1000) make a cluster elect its leader in about half a second; they also lower etcd's
minimum lease TTL to 1 s (1.5 election timeouts, rounded up), which the lease tests need.

Every process is killed when the context manager exits, a failing test included. A member
that does not become healthy in time fails the test with the end of its log.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import REQUIRE_TOOLS

HEALTH_TIMEOUT = 20.0  # seconds for a member (or a whole cluster) to elect and answer
STOP_TIMEOUT = 10.0  # seconds a SIGTERM'd member may take to exit before SIGKILL
CLUSTER_STOP_GRACE = 1.0  # seconds a whole cluster's SIGTERM'd members get before SIGKILL
LOG_TAIL_LINES = 40


def require_etcd() -> tuple[str, str]:
    """The paths of etcd and etcdctl; skipped when missing, failed with
    GEODNS_REQUIRE_TOOLS=1 (CI), as tests/resolvers.require_unbound does."""
    etcd, etcdctl = shutil.which("etcd"), shutil.which("etcdctl")
    if etcd is None or etcdctl is None:
        reason = "etcd and etcdctl not installed (apt-get install etcd-server etcd-client)"
        if REQUIRE_TOOLS:
            pytest.fail(f"{reason}; they are required (GEODNS_REQUIRE_TOOLS=1)")
        pytest.skip(f"{reason}: the etcd store tests need them")
    return etcd, etcdctl


@dataclass(frozen=True)
class TLSFiles:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, all PEM."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def make_tls(directory: Path) -> TLSFiles:
    """A fresh CA in `directory`, and server/client certificates it signed."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)

    def name(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])

    def write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(name("geodns test CA"))
        .issuer_name(name("geodns test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    (directory / "ca.pem").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))

    def issue(common: str, usage: list[x509.ObjectIdentifier], stem: str) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(name(common))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.DNSName("localhost"),
                        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    ]
                ),
                critical=False,
            )
            .add_extension(x509.ExtendedKeyUsage(usage), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        (directory / f"{stem}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        write_key(directory / f"{stem}-key.pem", key)

    # etcd 3.4's JSON gateway dials the member's own gRPC port showing the server
    # certificate as its client certificate: with --client-cert-auth, the server
    # certificate needs clientAuth as well, or every gateway call says "connection closed".
    both = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    issue("127.0.0.1", both, "server")
    issue("geodns", [ExtendedKeyUsageOID.CLIENT_AUTH], "client")
    return TLSFiles(
        ca=directory / "ca.pem",
        server_cert=directory / "server.pem",
        server_key=directory / "server-key.pem",
        client_cert=directory / "client.pem",
        client_key=directory / "client-key.pem",
    )


@dataclass
class Member:
    """One etcd process; its data dir and ports stay the same across restarts."""

    name: str
    client_port: int
    peer_port: int
    metrics_port: int
    data_dir: Path
    log_path: Path
    command: list[str]  # everything but --initial-cluster-state
    process: subprocess.Popen[bytes] | None = None
    started: bool = False  # once started, a restart joins the existing cluster

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def launch(self) -> None:
        """Start the process without waiting for it to be healthy (see start())."""
        if self.running:
            return
        state = "existing" if self.started else "new"
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [*self.command, "--initial-cluster-state", state],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.started = True

    def start(self, timeout: float = HEALTH_TIMEOUT) -> None:
        """(Re)start this member and wait until it answers healthy (it needs a quorum)."""
        self.launch()
        wait_healthy([self], timeout)

    def kill(self) -> None:
        """SIGKILL, as a crashed machine: no goodbye to the peers or the clients."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        """SIGTERM and wait (SIGKILL after STOP_TIMEOUT s)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.kill()

    def healthy(self) -> bool:
        url = f"http://127.0.0.1:{self.metrics_port}/health"
        try:
            with urllib.request.urlopen(url, timeout=1.0) as response:
                return json.load(response).get("health") == "true"
        except (OSError, ValueError, urllib.error.URLError):
            return False

    def log_tail(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(lines[-LOG_TAIL_LINES:])


@dataclass
class Cluster:
    members: list[Member]
    etcdctl_path: str
    tls: TLSFiles | None = None
    directory: Path = field(default_factory=Path)

    @property
    def endpoints(self) -> list[str]:
        return [m.endpoint for m in self.members]

    @property
    def url(self) -> str:
        scheme = "etcds" if self.tls else "etcd"
        return f"{scheme}://{','.join(self.endpoints)}"

    def start(self, timeout: float = HEALTH_TIMEOUT) -> None:
        """Start every stopped member together (they need each other for a quorum)."""
        for member in self.members:
            member.launch()
        wait_healthy(self.members, timeout)

    def stop(self) -> None:
        """SIGTERM every member; SIGKILL what is left after CLUSTER_STOP_GRACE s (the last
        leader waits ~6 s for a peer to hand its leadership to; etcd fsyncs its log on
        every commit, so nothing is lost)."""
        for member in self.members:
            if member.running:
                member.process.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        deadline = time.monotonic() + CLUSTER_STOP_GRACE
        for member in self.members:
            if member.process is not None:
                try:
                    member.process.wait(max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    member.kill()

    def kill(self) -> None:
        for member in self.members:
            member.kill()

    def etcdctl(self, *args: str, user: str | None = None) -> str:
        """Run etcdctl against the running members; its stdout (fails the test on error)."""
        command = [self.etcdctl_path, "--endpoints", ",".join(self.endpoints)]
        if self.tls is not None:
            command += [
                "--cacert",
                str(self.tls.ca),
                "--cert",
                str(self.tls.client_cert),
                "--key",
                str(self.tls.client_key),
            ]
        if user is not None:
            command += ["--user", user]
        done = subprocess.run(
            [*command, *args],
            capture_output=True,
            text=True,
            timeout=30,
            env={**os.environ, "ETCDCTL_API": "3"},
        )
        if done.returncode != 0:
            pytest.fail(f"etcdctl {' '.join(args)}: {done.stderr.strip() or done.stdout}")
        return done.stdout

    def leader(self) -> Member:
        """The member the running ones agree leads (etcdctl endpoint status)."""
        running = [m for m in self.members if m.running]
        command = [self.etcdctl_path, "--endpoints", ",".join(m.endpoint for m in running)]
        done = subprocess.run(
            [*command, "endpoint", "status", "-w", "json"],
            capture_output=True,
            text=True,
            timeout=30,
            env={**os.environ, "ETCDCTL_API": "3"},
        )
        statuses = json.loads(done.stdout or "[]")
        ids = {s["Endpoint"]: s["Status"]["header"]["member_id"] for s in statuses}
        leaders = {s["Status"]["leader"] for s in statuses}
        for member in running:
            if len(leaders) == 1 and ids.get(member.endpoint) in leaders:
                return member
        pytest.fail(f"no agreed leader among {[m.name for m in running]}: {done.stdout}")

    def compact(self, revision: int) -> None:
        """Drop the history before `revision`: watches from before it are refused."""
        self.etcdctl("compaction", "--physical", str(revision))


def wait_healthy(members: list[Member], timeout: float = HEALTH_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    waiting = list(members)
    while waiting:
        for member in list(waiting):
            if not member.running:
                code = member.process.returncode if member.process else None
                pytest.fail(f"etcd {member.name} exited ({code}):\n{member.log_tail()}")
            if member.healthy():
                waiting.remove(member)
        if waiting and time.monotonic() > deadline:
            logs = "\n".join(f"--- {m.name} ({m.log_path})\n{m.log_tail()}" for m in waiting)
            pytest.fail(
                f"etcd {', '.join(m.name for m in waiting)} not healthy in {timeout} s:\n{logs}"
            )
        if waiting:
            time.sleep(0.05)


@contextlib.contextmanager
def etcd_cluster(
    n: int = 1, *, tls: TLSFiles | None = None, extra_args: tuple[str, ...] = ()
) -> Iterator[Cluster]:
    """`n` etcd members on free loopback ports, healthy; all killed and removed on exit.
    With `tls`, clients must speak TLS and show a certificate signed by its CA."""
    etcd, etcdctl = require_etcd()
    base = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    directory = Path(tempfile.mkdtemp(prefix="geodns-etcd-", dir=base))
    ports = _free_ports(3 * n)
    names = [f"m{i}" for i in range(n)]
    peers = ",".join(f"{name}=http://127.0.0.1:{ports[3 * i + 1]}" for i, name in enumerate(names))
    scheme = "https" if tls else "http"
    members = []
    for i, name in enumerate(names):
        client, peer, metrics = ports[3 * i : 3 * i + 3]
        command = [
            etcd,
            "--name", name,
            "--data-dir", str(directory / name),
            "--listen-client-urls", f"{scheme}://127.0.0.1:{client}",
            "--advertise-client-urls", f"{scheme}://127.0.0.1:{client}",
            "--listen-peer-urls", f"http://127.0.0.1:{peer}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
            "--listen-metrics-urls", f"http://127.0.0.1:{metrics}",
            "--initial-cluster", peers,
            "--initial-cluster-token", directory.name,
            "--heartbeat-interval", "50",
            "--election-timeout", "500",
            *extra_args,
        ]  # fmt: skip
        if tls is not None:
            command += [
                "--cert-file", str(tls.server_cert),
                "--key-file", str(tls.server_key),
                "--trusted-ca-file", str(tls.ca),
                "--client-cert-auth",
            ]  # fmt: skip
        members.append(
            Member(
                name, client, peer, metrics, directory / name, directory / f"{name}.log", command
            )
        )
    cluster = Cluster(members, etcdctl, tls, directory)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.kill()
        shutil.rmtree(directory, ignore_errors=True)


def _free_ports(count: int) -> list[int]:
    """`count` distinct free TCP ports on 127.0.0.1 (held open until all are chosen)."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
        return ports
