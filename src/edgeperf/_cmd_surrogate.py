"""``edgeperf surrogate ...``: the learned twin's data (``generate``), training
(``train``), judging (``evaluate``) and use on one scenario (``predict``)."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from ._validation import SEED_MAX

surrogate_app = typer.Typer(no_args_is_help=True, help="The learned twin: a ChainNet-style GNN "
                            "trained on deployments the simulator labels.")


class RegimeName(str, Enum):
    chainnet = "chainnet"
    edgeperf = "edgeperf"
    larger = "larger"
    larger_edgeperf = "larger-edgeperf"


def _check_out(out: Path) -> None:
    """Refuse a target that cannot be written before minutes of simulation, not after."""
    from . import _validation as v

    if out.suffix != ".npz":
        raise v.fail("surrogate generate", "--out", "a file name ending in .npz", str(out))
    v.output_file("surrogate generate", "--out", out)


@surrogate_app.command("generate")
def generate_command(
    out: Annotated[Path, typer.Option(help="Data set to write (.npz).", show_default=False)],
    samples: Annotated[int, typer.Option(help="Deployments to draw and simulate.", min=1,
                                         show_default=False)],
    regime: Annotated[RegimeName, typer.Option(
        help="chainnet: ChainNet's published regime; edgeperf: plus early exits, link "
             "stations, variable service; larger(-edgeperf): beyond them (11-16 devices, "
             "paths of 7-10).")] = RegimeName.chainnet,
    seed: Annotated[int, typer.Option(
        help="Seed; deployment i is simulated with seed + i.", min=0)] = 0,
    jobs: Annotated[int, typer.Option(help="Arrivals simulated per replication.",
                                      min=100)] = 30_000,
    replications: Annotated[int, typer.Option(help="Independent replications each.", min=1)] = 2,
    workers: Annotated[int, typer.Option(help="Local dask worker processes.", min=1)] = 2,
) -> None:
    """Draw random deployments and label them with the event engine: a training set."""
    from .surrogate._dataset import save_dataset
    from .surrogate._generate import generate_dataset

    _check_out(out)
    data = generate_dataset(samples, regime=regime.value, seed=seed, jobs=jobs,
                            replications=replications, n_workers=workers)
    save_dataset(data.samples, out, meta=data.meta)
    chains = sum(len(s.labels) for s in data.samples)
    print(f"{len(data.samples)} deployments, {chains} chains: wrote {out}")
    if data.meta["skipped"]:
        print(f"edgeperf: {data.meta['skipped']} of {samples} deployments failed to simulate "
              f"and were skipped; first: {data.meta['failures'][0]}", file=sys.stderr)


class ModelName(str, Enum):
    chainnet = "chainnet"
    gat = "gat"
    gcn = "gcn"
    mlp = "mlp"


@surrogate_app.command("train")
def train_command(
    data: Annotated[list[Path], typer.Argument(
        help="Data sets written by 'surrogate generate' (pooled).")],
    out: Annotated[Path, typer.Option(help="Folder for <model>.safetensors and <model>.json.")]
        = Path("models/surrogate"),
    model: Annotated[ModelName, typer.Option(help="The network to train.")]
        = ModelName.chainnet,
    epochs: Annotated[int, typer.Option(help="At most this many epochs.", min=1)] = 200,
    patience: Annotated[int, typer.Option(help="Stop after this many epochs without a "
                                               "better validation error.", min=1)] = 20,
    val_share: Annotated[float, typer.Option(help="Share of the data held out for early "
                                                  "stopping.")] = 0.2,
    seed: Annotated[int, typer.Option(help="Seed of the split, the weights and the batches.",
                                      min=0, max=SEED_MAX)] = 0,
    name: Annotated[str | None, typer.Option(help="File name (stem) of the saved model; "
                                                  "default: the network's name.")] = None,
    hidden: Annotated[int | None, typer.Option(help="Width of the network's hidden states; "
                                                    "default: the network's own.", min=2)] = None,
) -> None:
    """Train a surrogate on generated deployments; save it (safetensors + JSON)."""
    from . import _validation as v
    from .surrogate import build_model, encode_samples, load_dataset, save_model, train

    import numpy as np

    v.real("surrogate train", "val_share", val_share, low=0.0, high=0.5, low_open=True)
    stem = model.value if name is None else name
    if not stem or Path(stem).name != stem or stem.startswith("."):
        raise v.fail("surrogate train", "--name", "a plain file name, no folder", name)
    v.output_folder("surrogate train", "--out", out)  # before training, not after
    datasets = [load_dataset(path) for path in data]
    graphs = encode_samples([s for d in datasets for s in d.samples])
    order = np.random.default_rng(seed).permutation(len(graphs))
    cut = max(1, int(round(val_share * len(graphs))))
    val, fit = [graphs[i] for i in order[:cut]], [graphs[i] for i in order[cut:]]
    net = build_model(model.value, seed=seed, **({} if hidden is None else {"hidden": hidden}))
    report = train(net, fit, val, epochs=epochs, patience=patience, seed=seed,
                   progress=sys.stderr.isatty())
    out.mkdir(parents=True, exist_ok=True)
    weights, _ = save_model(net, out / f"{stem}.safetensors", provenance={
        "data": [str(p) for p in data], "data_meta": [d.meta for d in datasets],
        "train": len(fit), "val": len(val),
        "seed": seed})
    best = report.best_val_mape
    print(f"{model.value}: best epoch {report.best_epoch}, validation MAPE throughput ratio "
          f"{best['tput_ratio']:.2f}%, response time {best['response_time']:.2f}% -> {weights}")


@surrogate_app.command("evaluate")
def evaluate_command(
    model: Annotated[Path, typer.Argument(help="A saved surrogate (.safetensors), or "
                                               "'analytic' for the decomposition.")],
    chainnet: Annotated[Path | None, typer.Option(
        help="Judge on ChainNet's published deployments in this folder.")] = None,
    data: Annotated[Path | None, typer.Option(help="Judge on a generated data set (.npz).")]
        = None,
    samples: Annotated[int | None, typer.Option(help="Use only the first N deployments.",
                                                min=1)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    plot: Annotated[Path | None, typer.Option(
        help="Write the parity plot (predicted against true, per chain) to this PNG.")] = None,
) -> None:
    """MAPE of a surrogate's throughput-ratio and response-time predictions."""
    import json

    from . import _validation as v
    from .surrogate import AnalyticModel, evaluate_model, from_chainnet, load_dataset, load_model

    if (chainnet is None) == (data is None):
        raise v.fail("surrogate evaluate", "--chainnet", "given, or --data, not both",
                     "both" if chainnet else "neither")
    if plot is not None:
        v.output_file("surrogate evaluate", "--plot", plot)
    items = from_chainnet(chainnet, samples) if chainnet is not None else \
        list(load_dataset(data).samples)[:samples]
    net = AnalyticModel() if str(model) == "analytic" else load_model(model)
    result = evaluate_model(net, items, plot=plot)
    if as_json:
        print(json.dumps(result))
        return
    print(f"{len(items)} deployments, {result['chains']} chains: MAPE throughput ratio "
          f"{result['mape_tput_ratio']:.2f}%, response time {result['mape_response_time']:.2f}% "
          f"({result['inference_s_per_deployment'] * 1e3:.2f} ms a deployment)")
    if result["deployments_outside_domain"]:
        print(f"{result['deployments_outside_domain']} of {len(items)} deployments lie outside "
              "the model's training domain: there it extrapolates")
    if plot is not None:
        print(f"plot written to {plot}")


@surrogate_app.command("predict")
def predict_command(
    scenario: Annotated[Path, typer.Argument(help="Scenario file (YAML or JSON).")],
    model: Annotated[Path | None, typer.Option(
        help="A saved surrogate (.safetensors); default: the shipped one for the scenario "
             "(trained on our regime too when a chain has an exit, a link or variable "
             "service).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Predict each chain's throughput ratio, loss and response time with the learned twin."""
    import json
    import time

    from rich.console import Console
    from rich.table import Table

    from .io import load_scenario
    from .placement import default_model
    from .surrogate import encode, load_model

    system = load_scenario(scenario)
    path = default_model(system) if model is None else model
    net = load_model(path)
    net.predict(encode(system))  # refuses bursts and several cores; the first call allocates
    start = time.perf_counter()
    graph = encode(system)
    pred = net.predict(graph)
    took = time.perf_counter() - start  # what a prediction costs, once warm
    chains = {c.name: {"tput_ratio": float(p[0]), "loss": 1.0 - float(p[0]),
                       "response_time": float(p[1])} for c, p in zip(system.chains, pred)}
    outside = None if net.domain is None else list(net.domain.gaps(graph)[0])
    if as_json:
        print(json.dumps({"model": str(path), "chains": chains, "outside_training": outside,
                          "predict_s": took}))
        return
    table = Table(title=f"learned twin {path.name} ({took * 1e3:.1f} ms)",
                  caption="response time: the sum of the chain's mean response times at "
                          "its devices (ChainNet's label; links left out)")
    for column in ("chain", "throughput ratio", "loss", "response time (s)"):
        table.add_column(column, justify="left" if column == "chain" else "right")
    for name, c in chains.items():
        table.add_row(name, f"{c['tput_ratio']:.4f}", f"{c['loss']:.4g}",
                      f"{c['response_time']:.5g}")
    out = Console()
    out.print(table)
    if outside:
        out.print("note: this deployment lies outside the twin's training data, so these are "
                  f"extrapolations (simulate it to be sure): {'; '.join(outside)}")
