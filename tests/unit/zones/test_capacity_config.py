"""The capacity keys: a region's size and a service's signals, every error with file and
line, and the JSON Schema accepting what the loader accepts."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import yaml

from geodns.zones.loader import load_zone_file
from geodns.zones.model import Signal
from geodns.zones.schema import zone_schema
from tests.unit.zones.test_services_config import HEAD, errors

GOOD = """\
    regions:
      us-east-1: {addresses: [192.0.2.10], capacity: {gpus: 800}}
      eu-west-1: {addresses: [192.0.2.20], capacity: {gpus: 8}}
    capacity:
      low: 0.7
      high: 0.9
      signals:
        num_requests_waiting: {low: 8, high: 32}
        gpu_cache_usage_perc: {low: 0.8, high: 0.95}
"""


def test_sizes_and_signals_are_read(tmp_path: Path) -> None:
    path = tmp_path / "z.yaml"
    path.write_text(HEAD + GOOD)
    (service,) = load_zone_file(path).services.values()
    assert [r.gpus for r in service.regions] == [800.0, 8.0]
    assert service.capacity.signals == (
        Signal("num_requests_waiting", 8.0, 32.0),
        Signal("gpu_cache_usage_perc", 0.8, 0.95),
    )
    jsonschema.validate(yaml.safe_load(HEAD + GOOD), zone_schema())


def test_bad_sizes_and_signals_are_reported_where_written(tmp_path: Path) -> None:
    out = errors(
        tmp_path,
        """\
    regions:
      us-east-1: {addresses: [192.0.2.10], capacity: {gpus: 0}}
      eu-west-1: {addresses: [192.0.2.20], capacity: {max_gpus: 8}}
      ap-1: {addresses: [192.0.2.30], capacity: 64}
    capacity:
      signals:
        num_requests_waiting: {low: 32, high: 8}
        gpu_cache_usage_perc: {low: high, high: 0.95}
        queue: 3
        utilization: {low: 0.1, high: 0.2}
""",
    )
    prefix = "services.inference"
    assert f":7: {prefix}.regions.us-east-1.capacity.gpus: 0 is not a positive number" in out
    assert f":8: {prefix}.regions.eu-west-1.capacity: must be {{gpus: NUMBER}}" in out
    assert f":9: {prefix}.regions.ap-1.capacity: must be {{gpus: NUMBER}}" in out
    assert (
        f":12: {prefix}.capacity.signals.num_requests_waiting: low (32) must be below high (8)"
        in out
    )
    assert f":13: {prefix}.capacity.signals.gpu_cache_usage_perc.low: 'high' is not a number" in out
    assert f":14: {prefix}.capacity.signals.queue: must be {{low: NUMBER, high: NUMBER}}" in out
    assert f":15: {prefix}.capacity.signals.utilization: 'utilization' is not a JSON key" in out
