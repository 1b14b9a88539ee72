"""The load report's arithmetic: switches, failures during them, one line a second."""

from __future__ import annotations

import pytest

from geodns.client.load import LoadReport, RequestRecord, Tick, _host_port, main

REFUSED = (("a", "failed: connection refused"),)


def rec(sent: float, region: str | None, done: float | None = None, **kw) -> RequestRecord:
    error = kw.pop("error", None if region else "every region failed")
    return RequestRecord(sent, sent + 0.01 if done is None else done, region, error, **kw)


def test_a_retried_switch_costs_no_failure() -> None:
    report = LoadReport(3, 10)
    report.records = [
        rec(0.0, "a"),
        rec(0.1, "a"),
        rec(0.2, "b", retried=REFUSED),
        rec(0.3, "b", retried=REFUSED),
        rec(0.4, "b", retried=(("a", "skipped: circuit open (2 failures)"),)),
    ]
    (switch,) = report.switches()
    assert (switch.from_region, switch.to_region) == ("a", "b")
    assert switch.trouble_at == 0.2
    assert switch.took == pytest.approx(0.01)
    assert (switch.failed, switch.retried) == (0, 1)
    assert (report.ok, report.failed, report.retried) == (5, 0, 2)
    assert report.by_region() == {"a": 2, "b": 3}
    assert "switch a -> b at 0.21 s: failover took 10 ms, 0 requests failed" in report.summary()


def test_failures_and_hanging_requests_count_against_the_switch() -> None:
    report = LoadReport(3, 10)
    report.records = [
        rec(0.0, "a"),
        rec(0.1, None, done=0.6),  # hung, then every region failed
        rec(0.2, "b", done=0.7, retried=(("a", "failed: timed out after 0.5 s"),)),
        rec(0.8, "b"),
        rec(1.0, "a"),  # back after the cool-down
    ]
    first, back = report.switches()
    assert first.trouble_at == 0.1
    assert first.answered_at == 0.7
    assert first.took == pytest.approx(0.6)
    assert (first.failed, first.retried) == (1, 1)
    assert (back.from_region, back.to_region, back.failed) == ("b", "a", 0)
    assert back.took == pytest.approx(0.01)
    assert report.failures == [(0.1, "every region failed")]


def test_tick_line() -> None:
    tick = Tick(3, {"eu-west-1": 19, "us-east-1": 1}, 0, 1, 2)
    assert tick.line() == "   3s  eu-west-1 19  us-east-1 1  failed 0  retried 1  in flight 2"


def test_dns_argument() -> None:
    assert _host_port("127.0.0.1:5300") == ("127.0.0.1", 5300)
    assert _host_port("[::1]:5300") == ("::1", 5300)
    assert _host_port("192.0.2.53") == ("192.0.2.53", 53)
    with pytest.raises(SystemExit):
        main(["--service", "inference.example.com", "--dns", "127.0.0.1:x"])


def test_reporting_latency_needs_the_rum_token(monkeypatch, capsys) -> None:
    import pytest

    from geodns.client.load import main

    monkeypatch.delenv("GEODNS_RUM_TOKEN", raising=False)
    with pytest.raises(SystemExit) as exited:
        main(["--service", "inference.example.com", "--rum-url", "http://127.0.0.1:1/api/rum"])
    assert exited.value.code == 2
    assert "GEODNS_RUM_TOKEN" in capsys.readouterr().err
