"""import_ceed: the CEED project's edge-device profile (../shared/data/ceed, BSD-3)
becomes our Profile; the data stays outside the repository (skipped when absent)."""

from __future__ import annotations

import copy
import json
import math
import re
from pathlib import Path

import pytest

from edgeperf.dists import Deterministic, Gamma, Lognormal, Sum
from edgeperf.exceptions import InvalidParameterError
from edgeperf.io import ScenarioError
from edgeperf.profiling import Profile, import_ceed, load_profile

CEED = Path(__file__).parents[2] / ".." / "shared" / "data" / "ceed"
pytestmark = pytest.mark.skipif(not (CEED / "system_profile.json").is_file(),
                                reason="the CEED profile (../shared/data/ceed) is not here")


def exactly(message: str) -> str:
    return "^" + re.escape(message) + "$"


def _json(name: str) -> dict:
    return json.loads((CEED / name).read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def profile() -> Profile:
    return import_ceed(CEED)


@pytest.fixture(scope="module")
def files() -> tuple[dict, dict]:
    return _json("model_profile.json"), _json("system_profile.json")


def _layer_keys(system: dict) -> list[str]:
    return sorted(system["backbone_execution_time"], key=lambda k: int(k.split("_")[1]))


# --------------------------------------------------------------------------- the mapping


def test_twenty_layer_blocks_and_nine_exits(profile, files):
    model, system = files
    assert len(system["layers_execution_time"]) == 56  # 20 backbone layers + 9 gates x 4 modules
    assert len(profile.blocks) == 20
    assert len(profile.exits) == 9
    assert profile.names[:5] == ("ResNetConv1_1", "BatchNorm2d_1", "ReLU_1", "ResNetMaxPool1_1",
                                 "ResidualBottleneck_1")
    assert profile.names[-1] == "ResidualBottleneck_16"
    assert [profile.names.index(e) for e in profile.exits] == model["early_exits_gates"]
    assert profile.blocks[-1].exit is not None  # the last gate is the final classifier
    assert profile.input_shape == (3, 32, 32) and profile.num_classes == 10
    assert profile.name == "ceed-cifar_10" and profile.source == "CEED import"
    assert profile.host["model_bytes"] == "94665953"


def test_block_statistics_are_the_files(profile, files):
    _, system = files
    for key, block in zip(_layer_keys(system), profile.blocks):
        moments = system["backbone_execution_time"][key]
        assert key.endswith(block.name)
        assert block.latency.mean == moments["mean"]
        assert block.latency.var == moments["var"]
        assert block.latency.n is None
        assert block.output_bytes == system["backbone_output_memory"][key]
        assert block.flops is None and block.param_bytes is None
        # the lognormal with the file's log moments
        law = block.latency.law
        assert isinstance(law, Lognormal)
        assert math.log(law.mean) - math.log1p(law.scv) / 2 == pytest.approx(moments["log_mean"])
        assert math.log1p(law.scv) == pytest.approx(moments["log_var"])
        # percentiles are the law's quantiles: the median of a lognormal is exp(log_mean)
        assert block.latency.p50 == pytest.approx(math.exp(moments["log_mean"]))
        assert block.latency.p50 < block.latency.p95 < block.latency.p99


def test_head_statistics_sum_the_gate_modules(profile, files):
    model, system = files
    for g, layer in enumerate(model["early_exits_gates"]):
        parts = [m for k, m in system["gate_execution_time"].items()
                 if k.startswith(f"gate_{g}_layer_{layer}_")]
        assert len(parts) == 4
        head = profile.blocks[layer].exit
        assert head.latency.mean == pytest.approx(sum(m["mean"] for m in parts))
        assert head.latency.var == pytest.approx(sum(m["var"] for m in parts))
        laws = [Lognormal(math.exp(m["log_mean"] + m["log_var"] / 2), math.expm1(m["log_var"]))
                for m in parts]
        assert head.latency.law.mean == pytest.approx(sum(x.mean for x in laws))
        assert head.latency.law.variance == pytest.approx(sum(x.variance for x in laws))


def test_times_are_seconds_and_paths_agree_with_ceed_measured_paths(profile, files):
    """The evidence on the edge device's data: the law means along each exit's
    path (its layers and its gate) agree with CEED's measured time to that
    gate, ``execution_time_gate_<g>_layer_<L>``, within 15 %."""
    model, system = files
    dnn = profile.to_dnn()
    for g, layer in enumerate(model["early_exits_gates"]):
        measured = system[f"execution_time_gate_{g}_layer_{layer}"]["mean"]
        predicted = sum(b.latency.law.mean for b in profile.blocks[:layer + 1]) \
            + profile.blocks[layer].exit.latency.law.mean
        assert predicted == pytest.approx(measured, rel=0.10), (g, predicted, measured)
    whole = sum(b.latency.mean for b in dnn.blocks)  # the DNN charges every head on the way
    assert whole == pytest.approx(system["execution_time"]["mean"], rel=0.01)


def test_the_import_round_trips_and_feeds_the_model(profile, tmp_path):
    assert load_profile(profile.save(tmp_path / "ceed.json")) == profile
    dnn = profile.to_dnn({"ResidualBottleneck_2": 0.3})
    assert isinstance(dnn.blocks[5].latency, Sum)
    assert dnn.blocks[5].exit_probability == 0.3
    assert dnn.blocks[3].exit_probability == 0.0


def test_name_override():
    assert import_ceed(CEED, name="resnet50-pi").name == "resnet50-pi"


# ------------------------------------------------------------------- laws without log moments


def _folder(tmp_path: Path, model: dict | None = None, system: dict | None = None) -> Path:
    """Writes (possibly edited) copies of the CEED files into a temporary folder."""
    folder = tmp_path / "ceed"
    folder.mkdir(exist_ok=True)
    for name, data in (("model_profile.json", model), ("system_profile.json", system)):
        text = json.dumps(data) if data is not None else (CEED / name).read_text(encoding="utf-8")
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def test_without_log_moments_the_law_is_gamma_on_mean_and_var(tmp_path, files):
    model, system = copy.deepcopy(files)
    first = _layer_keys(system)[0]
    moments = system["backbone_execution_time"][first]
    del moments["log_mean"], moments["log_var"]
    second = system["backbone_execution_time"][_layer_keys(system)[1]]
    del second["log_mean"]
    second["var"] = 0.0
    prof = import_ceed(_folder(tmp_path, model, system))
    mean, var = moments["mean"], moments["var"]
    assert prof.blocks[0].latency.law == Gamma(mean**2 / var, mean)
    assert prof.blocks[1].latency.law == Deterministic(second["mean"])


# --------------------------------------------------------------------------- errors


def test_a_name_must_be_a_name(tmp_path):  # '' fell back to the default
    with pytest.raises(InvalidParameterError, match=exactly(
            "The 'name' parameter of import_ceed must be a non-empty string. Got ''.")):
        import_ceed(tmp_path, name="")


def test_a_missing_folder_or_file(tmp_path):
    with pytest.raises(ScenarioError, match=exactly(
            f"{tmp_path / 'model_profile.json'}: is missing (a CEED profile folder holds "
            "model_profile.json and system_profile.json).")):
        import_ceed(tmp_path)
    (tmp_path / "model_profile.json").write_text((CEED / "model_profile.json").read_text())
    with pytest.raises(ScenarioError, match=exactly(
            f"{tmp_path / 'system_profile.json'}: is missing (a CEED profile folder holds "
            "model_profile.json and system_profile.json).")):
        import_ceed(tmp_path)


def test_a_file_that_cannot_be_read(tmp_path):
    folder = _folder(tmp_path)
    (folder / "model_profile.json").unlink()
    (folder / "model_profile.json").mkdir()
    with pytest.raises(ScenarioError, match=exactly(
            f"{folder / 'model_profile.json'}: cannot be read: Is a directory.")):
        import_ceed(folder)


def test_an_input_size_that_is_no_shape(tmp_path, files):
    folder = _folder(tmp_path, *_edited(files, lambda m, s: m.update(input_size=[3, 0, 32])))
    with pytest.raises(ScenarioError, match=exactly(
            f"{folder / 'model_profile.json'}: The 'input_shape' parameter of Profile must be a "
            "non-empty list of ints >= 1. Got (3, 0, 32).")):
        import_ceed(folder)


def test_block_names_fall_back_on_the_keys_when_names_repeat(tmp_path, files):
    def edit(m, s):
        for section in ("backbone_execution_time", "backbone_output_memory"):
            s[section]["layer_1_ResNetConv1_1"] = s[section].pop("layer_1_BatchNorm2d_1")
    prof = import_ceed(_folder(tmp_path, *_edited(files, edit)))
    assert prof.names[:3] == ("layer_0_ResNetConv1_1", "layer_1_ResNetConv1_1", "layer_2_ReLU_1")


def test_a_file_that_is_not_json(tmp_path):
    folder = _folder(tmp_path)
    (folder / "system_profile.json").write_text("{\n nope", encoding="utf-8")
    with pytest.raises(ScenarioError, match=exactly(
            f"{folder / 'system_profile.json'}: is not valid JSON: Expecting property name "
            "enclosed in double quotes at line 2 column 2.")):
        import_ceed(folder)


def test_a_file_that_is_not_a_mapping(tmp_path):
    folder = _folder(tmp_path)
    (folder / "model_profile.json").write_text("[]", encoding="utf-8")
    with pytest.raises(ScenarioError, match=exactly(
            f"{folder / 'model_profile.json'}: (top level): must be a mapping. Got list.")):
        import_ceed(folder)


def _edited(files, edit) -> tuple[dict, dict]:
    model, system = copy.deepcopy(files)
    edit(model, system)
    return model, system


def _first(system: dict) -> str:
    return _layer_keys(system)[0]


@pytest.mark.parametrize("edit, which, tail", [
    (lambda m, s: m.pop("early_exits_gates"), "model_profile.json",
     "early_exits_gates: is required but missing."),
    (lambda m, s: m.update(num_classes="ten"), "model_profile.json",
     "num_classes: Input should be a valid integer, unable to parse string as an integer. "
     "Got 'ten'."),
    (lambda m, s: s.pop("backbone_execution_time"), "system_profile.json",
     "backbone_execution_time: is required but missing."),
    (lambda m, s: s["backbone_execution_time"][_first(s)].pop("mean"), "system_profile.json",
     "backbone_execution_time.layer_0_ResNetConv1_1.mean: is required but missing."),
    (lambda m, s: s["backbone_execution_time"][_first(s)].update(mean=0.0),
     "system_profile.json",
     "backbone_execution_time.layer_0_ResNetConv1_1: The 'mean' parameter of LatencyStats must "
     "be a finite number > 0. Got 0.0."),
    (lambda m, s: s["backbone_output_memory"].pop("layer_4_ResidualBottleneck_1"),
     "system_profile.json",
     "backbone_output_memory.layer_4_ResidualBottleneck_1: is required but missing."),
    (lambda m, s: s["backbone_output_memory"].update(layer_0_ResNetConv1_1=10.5),
     "system_profile.json",
     "backbone_output_memory.layer_0_ResNetConv1_1: must be a whole number of bytes >= 0. "
     "Got 10.5."),
    (lambda m, s: s["backbone_execution_time"].pop("layer_4_ResidualBottleneck_1"),
     "system_profile.json",
     "backbone_execution_time: layer indices must be 0..n-1 (n >= 1). Got [0, 1, 2, 3, 5, 6, 7, "
     "8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19]."),
    (lambda m, s: s["backbone_execution_time"].update(conv={"mean": 1.0, "var": 0.0}),
     "system_profile.json",
     "backbone_execution_time: keys must be 'layer_<i>_<name>' with distinct i. Got 'conv'."),
    (lambda m, s: m.update(early_exits_gates=[3, 3, 7, 9, 11, 13, 15, 17, 19]),
     "model_profile.json",
     "early_exits_gates: must be increasing layer indices in 0..19. "
     "Got [3, 3, 7, 9, 11, 13, 15, 17, 19]."),
    (lambda m, s: m.update(early_exits_gates=[4, 5, 7, 9, 11, 13, 15, 17, 19]),
     "system_profile.json",
     "gate_execution_time.gate_0_layer_3_SelectAdaptivePool2d_1: must be named "
     "'gate_<g>_layer_<L>_<module>' with L = early_exits_gates[g] for g in 0..8 "
     "(early_exits_gates = [4, 5, 7, 9, 11, 13, 15, 17, 19])."),
    (lambda m, s: m.update(early_exits_gates=[3, 5, 7, 9, 11, 13, 15, 17, 19, 20]),
     "model_profile.json",
     "early_exits_gates: must be increasing layer indices in 0..19. "
     "Got [3, 5, 7, 9, 11, 13, 15, 17, 19, 20]."),
    (lambda m, s: s.update(gate_execution_time={k: x for k, x in s["gate_execution_time"].items()
                                                if not k.startswith("gate_8_")}),
     "system_profile.json", "gate_execution_time: has no modules for gate(s) [8]."),
])
def test_bad_files_get_one_line_naming_file_and_field(tmp_path, files, edit, which, tail):
    folder = _folder(tmp_path, *_edited(files, edit))
    with pytest.raises(ScenarioError, match=exactly(f"{folder / which}: {tail}")):
        import_ceed(folder)


def test_import_ceed_refuses_what_is_not_a_path():
    with pytest.raises(InvalidParameterError, match=exactly(
            "The 'directory' parameter of import_ceed must be a folder path (str or "
            "os.PathLike). Got 3.")):
        import_ceed(3)
