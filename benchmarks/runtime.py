"""The runtime against its twin, and what the runtime itself costs.

* **Per-hop overhead**: an activation of 1 kB to 1 MB sent through one ZeroMQ
  hop (encode, send, receive, decode, in another process, and back), half the
  round trip, beside an in-process forward of the default model (batch 1).
* **Highest sustainable rate** of a 3-worker pipeline of the default zoo model
  (ResNet-32 trained on digits, every job to the final exit, devices at this
  host's speed): rates rise until a run loses more than 1 % or completes less
  than 98 % of what was offered.
* **Twin validation**: a 2-device and a 3-device scenario (emulated slow
  devices and a Wi-Fi link) at four loads from light to overload, each run
  for ``DURATION_S``: measured loss, throughput, mean and p95 response time
  and accuracy, next to the analytic and simulated predictions with their
  relative errors. The predictions use the profile scaled per device by the
  CPU time the run's workers reported (the twin's calibration; the factors
  are in the results), and the uncalibrated, profile-only predictions are
  kept beside them.

    .venv/bin/python benchmarks/runtime.py      (or: make bench)

Writes benchmarks/results/runtime.json.
"""

from __future__ import annotations

import multiprocessing as mp
import platform
import sys
import time
from pathlib import Path

import numpy as np
import yaml

from _results import save_result  # benchmarks/_results.py
from edgeperf.io import load_scenario
from edgeperf.runtime import plan_deployment, run_deployment, twin_report
from edgeperf.runtime._twin import KEYS, measured_calibration

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "build" / "bench-models" / "resnet32"  # shared with the schedulers benchmark
WORK = ROOT / "build" / "bench-runtime"
DURATION_S, SEED, THRESHOLD = 30.0, 0, 0.9
SIZES = (1_000, 4_000, 16_000, 64_000, 256_000, 1_000_000)
#: (name, devices, links, split points, arrival rates from light load to overload)
SCENARIOS = (
    ("two_devices", [{"name": "pi", "capacity": 4, "speed": 0.1},
                     {"name": "edge", "capacity": 6, "speed": 0.2}],
     [("pi", "edge", 2e7)], [6], [4.0, 12.0, 20.0, 32.0]),
    ("three_devices", [{"name": "pi", "capacity": 4, "speed": 0.1},
                       {"name": "edge", "capacity": 4, "speed": 0.15},
                       {"name": "server", "capacity": 6, "speed": 0.3}],
     [("pi", "edge", 2e7), ("edge", "server", 5e7)], [5, 11], [4.0, 10.0, 16.0, 26.0]),
)


def trained_model():
    """The default model, trained once and cached (as the schedulers benchmark does)."""
    from edgeperf.earlyexit import load_trained, save_trained, train_digits
    from edgeperf.profiling import measure_profile

    if not (MODEL / "weights.safetensors").is_file():
        save_trained(train_digits("resnet32", progress=False), MODEL)
    if not (MODEL / "profile.json").is_file():
        measure_profile(load_trained(MODEL).net).save(MODEL / "profile.json")
    return MODEL


def _echo(address: str, ready) -> None:  # noqa: ANN001 - a multiprocessing Event
    """The far end of a hop: decode each message, encode it again, send it back."""
    import zmq

    from edgeperf.runtime._wire import decode, encode

    ctx = zmq.Context()
    sock = ctx.socket(zmq.PAIR)
    sock.bind(address)
    ready.set()
    while True:
        message = decode(sock.recv_multipart(), max_bytes=64 * 2**20)
        if message.header.get("stop"):
            break
        sock.send_multipart(encode(message.header, message.payload))
    sock.close(linger=0)
    ctx.term()


def hop_overhead(repetitions: int = 200) -> dict:
    import torch
    import zmq

    from edgeperf.earlyexit import load_trained
    from edgeperf.runtime._plan import free_ports
    from edgeperf.runtime._wire import decode, tensor_frames

    address = f"tcp://127.0.0.1:{free_ports(1)[0]}"
    ready = mp.get_context("spawn").Event()
    far = mp.get_context("spawn").Process(target=_echo, args=(address, ready), daemon=True)
    far.start()
    ready.wait(30)
    ctx = zmq.Context()
    sock = ctx.socket(zmq.PAIR)
    sock.connect(address)
    rows = []
    for size in SIZES:
        array = np.zeros(size // 4, dtype=np.float32)
        header = {"kind": "job", "id": 0, "t_arrival": 0.0, "row": 0, "label": 0, "exit": None}
        times = []
        for _ in range(repetitions + 10):
            start = time.perf_counter()
            sock.send_multipart(tensor_frames(header, array))
            decode(sock.recv_multipart(), max_bytes=64 * 2**20).tensor()
            times.append((time.perf_counter() - start) / 2.0)
        rows.append({"bytes": size, "overhead_s": float(np.median(times[10:]))})
    sock.send_multipart(tensor_frames({**header, "stop": True}, np.zeros(1, np.float32)))
    far.join(10)
    sock.close(linger=0)
    ctx.term()
    net = load_trained(trained_model()).net.eval()
    torch.set_num_threads(1)
    x = torch.zeros(1, *net.input_shape)
    with torch.inference_mode():
        for _ in range(10):
            net(x)
        start = time.perf_counter()
        for _ in range(100):
            net(x)
    forward = (time.perf_counter() - start) / 100
    return {"rows": rows, "forward_s": forward}


def write_scenario(name: str, devices: list[dict], links: list[tuple], splits: list[int],
                   rate: float) -> Path:
    from edgeperf.profiling import load_profile

    names = list(load_profile(MODEL / "profile.json").names)
    bounds = [0, *splits, len(names)]
    data = {"workload": {"arrival": {"process": "poisson", "rate": rate}},
            "model": {"profile": str(MODEL / "profile.json")},
            "devices": devices,
            "links": [{"from": a, "to": b, "bandwidth_bps": bw, "capacity": 6,
                       "latency_s": 0.002} for a, b, bw in links],
            "placement": {d["name"]: names[bounds[i]:bounds[i + 1]]
                          for i, d in enumerate(devices)}}
    WORK.mkdir(parents=True, exist_ok=True)
    file = WORK / f"{name}_{rate:g}.yaml"
    file.write_text(yaml.safe_dump(data), encoding="utf-8")
    return file


def max_rate(rates=(50.0, 100.0, 150.0, 200.0, 250.0, 300.0, 400.0), duration_s=8.0) -> dict:
    """Every job to the final exit (threshold above 1), three workers at full speed."""
    tried = []
    devices = [{"name": f"w{i}", "capacity": 8, "speed": 1.0} for i in range(3)]
    links = [("w0", "w1", 1e9), ("w1", "w2", 1e9)]
    best = 0.0
    for rate in rates:
        file = write_scenario("pipeline", devices, links, [5, 10], rate)
        deployment = plan_deployment(load_scenario(file), MODEL, scenario_path=file,
                                     thresholds=1.01)
        run = run_deployment(deployment, duration_s=duration_s, seed=SEED)
        m = run.metrics
        ok = m.loss_probability <= 0.01 and m.throughput >= 0.98 * rate
        tried.append({"arrival_rate": rate, "loss_probability": m.loss_probability,
                      "throughput": m.throughput, "sustained": ok})
        print(f"pipeline {rate:g}/s: loss {m.loss_probability:.4f}, "
              f"throughput {m.throughput:.1f}/s", flush=True)
        if not ok:
            break
        best = rate
    return {"max_rate": best, "tried": tried}


def _metrics(row: dict | None) -> dict | None:
    return None if row is None else {k: row.get(k) for k in KEYS}


def twin() -> list[dict]:
    out = []
    for name, devices, links, splits, rates in SCENARIOS:
        for rate in rates:
            file = write_scenario(name, devices, links, splits, rate)
            system = load_scenario(file)
            deployment = plan_deployment(system, MODEL, scenario_path=file, thresholds=THRESHOLD)
            run = run_deployment(deployment, duration_s=DURATION_S, seed=SEED)
            factors = measured_calibration(run)
            calibrated = twin_report(system, deployment, run, seed=SEED, calibration=factors)
            profile_only = twin_report(system, deployment, run, seed=SEED)
            row = {"scenario": name, "arrival_rate": rate,
                   "measured": _metrics(calibrated["measured"]),
                   "analytic": _metrics(calibrated["analytic"]),
                   "simulated": _metrics(calibrated["simulated"]),
                   "relative_error": calibrated["relative_error"],
                   "measured_ci": calibrated["measured"]["half_widths"],
                   "calibration": factors,
                   "analytic_profile_only": _metrics(profile_only["analytic"]),
                   "simulated_profile_only": _metrics(profile_only["simulated"]),
                   "counts": run.counts}
            out.append(row)
            m, s = row["measured"], row["simulated"]
            print(f"{name} {rate:g}/s: loss {m['loss_probability']:.3f} vs "
                  f"{s['loss_probability']:.3f}, mean {m['mean_response_time']:.3f} vs "
                  f"{s['mean_response_time']:.3f} s", flush=True)
    return out


def measure() -> dict:
    started = time.perf_counter()
    trained_model()
    hop = hop_overhead()
    pipeline = max_rate()
    result = {"host": {"python": sys.version.split()[0], "machine": platform.machine()},
              "settings": {"duration_s": DURATION_S, "seed": SEED, "threshold": THRESHOLD},
              "twin": twin(), "hop_overhead": hop["rows"], "forward_s": hop["forward_s"],
              "max_rate": pipeline["max_rate"], "max_rate_tried": pipeline["tried"]}
    result["wall_s"] = time.perf_counter() - started
    return result


def _rel(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:+.0f}%"


def markdown_table(result: dict) -> str:
    lines = [f"Measured (runs of {result['settings']['duration_s']:g} s, threshold "
             f"{result['settings']['threshold']:g}) against the simulated twin calibrated by the "
             "run's CPU times (relative error of the measurement; analytic in brackets).", "",
             "| scenario | rate 1/s | loss | throughput 1/s | mean s | p95 s | accuracy |",
             "|---|---|---|---|---|---|---|"]
    for row in result["twin"]:
        m, s = row["measured"], row["simulated"]
        err, aerr = row["relative_error"]["simulated"], row["relative_error"]["analytic"] or {}
        cells = []
        for k in KEYS:
            shown = f"{m[k]:.3g} vs {s[k]:.3g}" if m[k] is not None and s[k] is not None \
                else "—"
            if k == "loss_probability":
                shown = f"{m[k]:.3f} vs {s[k]:.3f}"
            cells.append(f"{shown} ({_rel(err.get(k))}; {_rel(aerr.get(k))})")
        lines.append(f"| {row['scenario']} | {row['arrival_rate']:g} | " + " | ".join(cells)
                     + " |")
    errs = [r["simulated_profile_only"]["mean_response_time"] / r["measured"]["mean_response_time"]
            - 1.0 for r in result["twin"]]
    factors = [f for r in result["twin"] for f in r["calibration"].values()]
    lines += ["", "Without calibration (the profile alone) the twin's mean response time is "
              f"{-100 * max(errs):.0f}% to {-100 * min(errs):.0f}% below the measurement: the "
              "workers' fragments cost "
              f"{min(factors):.1f}-{max(factors):.1f}x their profile's CPU time in these runs "
              "(see docs/background/runtime.md)."]
    forward = result["forward_s"]
    lines += ["", "Per-hop overhead (half a round trip through another process) against one "
              f"in-process forward of the model ({forward * 1e3:.2f} ms):", "",
              "| activation | overhead ms | × forward |", "|---|---|---|"]
    for r in result["hop_overhead"]:
        lines.append(f"| {r['bytes'] / 1e3:g} kB | {r['overhead_s'] * 1e3:.3f} | "
                     f"{r['overhead_s'] / forward:.2f} |")
    lines += ["", f"Highest sustainable rate of a 3-worker pipeline (every job to the final "
              f"exit): {result['max_rate']:g} requests/s."]
    return "\n".join(lines)


def main() -> int:
    result = measure()
    save_result("runtime", result)
    print(markdown_table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
