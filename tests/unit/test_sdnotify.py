"""geodns.sdnotify on real unix datagram sockets: paths, abstract names, and no systemd."""

from __future__ import annotations

import logging
import os
import socket
import time

import pytest

from geodns import sdnotify


def receive(sock: socket.socket) -> dict[str, str]:
    sock.settimeout(2)
    data = sock.recv(4096).decode()
    return dict(line.split("=", 1) for line in data.splitlines())


def test_a_path(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = str(tmp_path / "n")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        monkeypatch.setenv("NOTIFY_SOCKET", path)
        assert sdnotify.ready("answering")
        assert receive(sock) == {"READY": "1", "STATUS": "answering"}
        assert sdnotify.stopping()
        assert receive(sock) == {"STOPPING": "1", "STATUS": "shutting down"}


def test_an_abstract_name(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"geodns-test-{os.getpid()}-{time.monotonic_ns()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)  # what systemd means by NOTIFY_SOCKET=@name
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        assert sdnotify.reloading()
        fields = receive(sock)
    assert fields["RELOADING"] == "1"
    assert before <= int(fields["MONOTONIC_USEC"]) <= time.monotonic_ns() // 1000


def test_not_under_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert not sdnotify.ready("x")


def test_a_socket_that_is_gone_is_logged_not_raised(
    tmp_path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "missing"))
    with caplog.at_level(logging.WARNING, "geodns.sdnotify"):
        assert not sdnotify.ready("x")
    assert "cannot notify systemd at" in caplog.text
    monkeypatch.setenv("NOTIFY_SOCKET", "relative/name")
    with caplog.at_level(logging.WARNING, "geodns.sdnotify"):
        assert not sdnotify.ready("x")
    assert "neither a path nor an abstract name" in caplog.text
