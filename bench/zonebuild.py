#!/usr/bin/env python3
"""The CPU a reload spends on one big zone, in this process: YAML, zone build, Answerer.

The zone is bench/reload.py's (10,000 A records plus the example zone's service). Each
stage runs --repeat times and the least CPU time (time.process_time) is printed, which
other processes' load disturbs little; YAML and build run with the collector off, as
load_zones runs them, so that they add up to it. No server, no sockets, no load.

    python bench/zonebuild.py
    python bench/zonebuild.py --records 10000 --repeat 5
"""

from __future__ import annotations

import argparse
import gc
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from bench.harness import cpu_model  # noqa: E402
from bench.reload import write_zone  # noqa: E402
from geodns.server.answer import Answerer  # noqa: E402
from geodns.yamlsource import read_yaml_file  # noqa: E402
from geodns.zones.loader import build_zone, load_zones  # noqa: E402


def least_cpu(repeat: int, step: Callable[[], object], collect: bool = True) -> float:
    """The least CPU time of `repeat` calls; `collect=False` turns the collector off during
    each, as load_zones does."""
    best = float("inf")
    for _ in range(repeat):
        if not collect:
            gc.disable()
        start = time.process_time()
        result = step()  # freed after the clock has stopped
        best = min(best, time.process_time() - start)
        gc.enable()
        del result
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--records", type=int, default=10000)
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        zone = write_zone(args.records, Path(tmp))
        doc = read_yaml_file(zone)
        zones = load_zones([zone])
        figures = {
            "YAML (read_yaml_file)": least_cpu(
                args.repeat, lambda: read_yaml_file(zone), collect=False
            ),
            "zone build (build_zone)": least_cpu(
                args.repeat, lambda: build_zone(doc), collect=False
            ),
            "load_zones (both)": least_cpu(args.repeat, lambda: load_zones([zone])),
            "Answerer(zones)": least_cpu(args.repeat, lambda: Answerer(zones)),
        }
    figures["total (load_zones + Answerer)"] = (
        figures["load_zones (both)"] + figures["Answerer(zones)"]
    )
    print(
        f"{args.records} A records + the example service ({len(doc.lines)} YAML paths); "
        f"least CPU of {args.repeat} runs"
    )
    print(
        f"{cpu_model()}, {platform.python_implementation()} {platform.python_version()}, "
        f"PyYAML {yaml.__version__} {'with' if yaml.__with_libyaml__ else 'without'} libyaml"
    )
    for what, seconds in figures.items():
        print(f"  {what:30} {seconds:6.3f} s")


if __name__ == "__main__":
    main()
