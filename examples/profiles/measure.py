"""Measure the profiles the testbed scenarios use: the zoo's ResNet-56 (CIFAR
shape, untrained: latency does not depend on the weights) on this host with 1
and with 2 torch threads, standing in for a small device and an edge server
measured separately (the per-device latencies of ``device_profiles``).

    .venv/bin/python examples/profiles/measure.py

Rewrites ``resnet56_1thread.json`` and ``resnet56_2threads.json`` beside this file.
"""

from __future__ import annotations

from pathlib import Path

from edgeperf.earlyexit import build
from edgeperf.profiling import measure_profile

HERE = Path(__file__).parent


def main() -> None:
    net = build("resnet56")
    for threads, name in ((1, "resnet56_1thread.json"), (2, "resnet56_2threads.json")):
        profile = measure_profile(net, repetitions=100, warmup=20, threads=threads,
                                  name="resnet56")
        profile.save(HERE / name)
        print(f"{name}: {sum(b.latency.mean for b in profile.blocks) * 1e3:.2f} ms a pass")


if __name__ == "__main__":
    main()
