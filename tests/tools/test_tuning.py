"""Per-GPU tuned configs: the tuned-file format and its validation, the pickers and the library's
forward using a GPU's file, compile-check covering it, the tuner's choice and rejections (its
timer replaced: on the CPU the kernels run in the interpreter, whose timings mean nothing), and
every tuning candidate's numerics.
"""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import pytest
import torch

from block_helpers import DEVICE
from fused_inception import forward

from fused_inception.tools.tune import command as tune
from fused_inception.tools.tune import rules as tune_rules
from fused_inception.kernels import tuned_configs
from fused_inception.tools.compile_check import aot
from fused_inception.kernels.configs import (
    CANDIDATES,
    POINTWISE_CONFIGS,
    REDUCE_CONV_CONFIGS,
    candidate_names,
    config_by_name,
    default_configs,
    launchable_configs,
)
from fused_inception.kernels.tuned_configs import (TunedFileError, config_fields, gpu_slug, pick_pointwise_config,
                                                   pick_reduce_conv_config)

GPU = "Test GPU 80GB"
# the kernels run on CUDA where there is one, else in the interpreter on the CPU (tests/conftest.py)


def _choice(kernel: str, dtype: str, precision: str, name: str) -> dict:
    return {"kernel": kernel, "dtype": dtype, "input_precision": precision, "config": name,
            "fields": config_fields(config_by_name(kernel, name))}


def _write(directory, choices=(), gpu: str = GPU, **changes):
    doc = {"schema": 1, "gpu": gpu, "tuned": {"note": "written by a test"}, "choices": list(choices), **changes}
    path = directory / f"{gpu_slug(gpu)}.json"
    path.write_text(json.dumps(doc))
    return path


def test_gpu_slug_matches_gpu_check_sh():
    """gpu_check.sh names its files and looks for kernels/tuned/<slug>.json with its own SLUG= line."""
    script = (Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_check.sh").read_text()
    (slug_line,) = [line for line in script.splitlines() if line.startswith("SLUG=")]
    for name in ("NVIDIA H200", "NVIDIA H100 80GB HBM3", "NVIDIA A100-SXM4-80GB", GPU):
        shell = subprocess.run(["bash", "-c", f'{slug_line}\necho "$SLUG"'],
                               env={"GPU_NAME": name, "PATH": "/usr/bin:/bin"},
                               capture_output=True, text=True, check=True).stdout.strip()
        assert gpu_slug(name) == shell
    assert gpu_slug("NVIDIA H200") == "nvidia-h200"
    with pytest.raises(ValueError):
        gpu_slug("  ")


def test_candidates_are_named_configs_with_the_default_first():
    for (kernel, _), names in CANDIDATES.items():
        assert len(set(names)) == len(names)
        for name in names:
            config_by_name(kernel, name)
    table_values = {"pointwise_pool": POINTWISE_CONFIGS, "reduce_conv": REDUCE_CONV_CONFIGS}
    for kernel, table in table_values.items():
        # every table entry is a candidate somewhere (no dead config), and no two are equal
        used = {n for (k, _), names in CANDIDATES.items() if k == kernel for n in names}
        assert used == set(table)
        assert len(set(table.values())) == len(table)
        # no config, nor any config's aligned tiles, uses 8 warps (docs/DESIGN.md §5)
        assert all(t.num_warps <= 4 for c in table.values() for t in (c, *(t for _, t in c.aligned)))
    # the defaults, pinned: reordering CANDIDATES must not change what launches without a tuned file
    expected = {("pointwise_pool", "float32", "ieee"): "fma", ("pointwise_pool", "float32", "tf32"): "b64",
                ("pointwise_pool", "float16", "ieee"): "default", ("pointwise_pool", "bfloat16", "ieee"): "default",
                ("reduce_conv", "float32", "ieee"): "fma", ("reduce_conv", "float32", "tf32"): "tf32",
                ("reduce_conv", "float16", "ieee"): "mma", ("reduce_conv", "bfloat16", "ieee"): "mma"}
    assert {(k, d, p): c for k, d, p, c in default_configs()} == {
        key: config_by_name(key[0], name) for key, name in expected.items()}
    for kernel, dtype, precision, cfg in default_configs():
        assert (kernel, dtype, precision, cfg) in launchable_configs()
        pick = pick_pointwise_config if kernel == "pointwise_pool" else pick_reduce_conv_config
        assert cfg == pick(dtype, precision)


def test_pickers_use_the_gpus_tuned_file(tuned_dir, monkeypatch):
    _write(tuned_dir, [_choice("pointwise_pool", "float16", "ieee", "s4"),
                       _choice("pointwise_pool", "float32", "tf32", "n32")])
    assert pick_pointwise_config("float16", "ieee", GPU) == POINTWISE_CONFIGS["s4"]
    assert pick_pointwise_config("float32", "tf32", GPU) == POINTWISE_CONFIGS["n32"]
    # rows the file does not list, other GPUs and no GPU: the defaults
    assert pick_reduce_conv_config("float16", "ieee", GPU) == REDUCE_CONV_CONFIGS["mma"]
    assert pick_pointwise_config("bfloat16", "ieee", GPU) == POINTWISE_CONFIGS["default"]
    assert pick_pointwise_config("float16", "ieee", "Another GPU") == POINTWISE_CONFIGS["default"]
    assert pick_pointwise_config("float16", "ieee") == POINTWISE_CONFIGS["default"]
    monkeypatch.setenv(tuned_configs.ENV_SWITCH, "0")
    tuned_configs.clear_cache()
    assert pick_pointwise_config("float16", "ieee", GPU) == POINTWISE_CONFIGS["default"]


@pytest.mark.parametrize("change, message", [
    (dict(choices=[_choice("reduce_conv", "float16", "ieee", "fma")]), "not a candidate for reduce_conv float16 ieee"),
    (dict(choices=[{**_choice("pointwise_pool", "float16", "ieee", "s4"),
                    "fields": {**config_fields(POINTWISE_CONFIGS["s4"]), "BLOCK_N": 48}}]), "re-tune"),
    (dict(choices=[_choice("reduce_conv", "float16", "ieee", "mma")] * 2), "a second choice"),
    (dict(choices=[{**_choice("reduce_conv", "float16", "ieee", "mma"), "kernel": "conv9"}]), "unknown kernel"),
    (dict(choices=[_choice("reduce_conv", "float16", "tf32", "mma")]), "never launched"),
    (dict(choices=[{"kernel": "reduce_conv"}]), "lacks"),
    (dict(choices=[{**_choice("reduce_conv", "float16", "ieee", "mma"), "dtype": ["float16"]}]), "must be strings"),
    (dict(schema=2), "schema-1"),
    (dict(gpu="Other GPU"), "file name says"),
])
def test_bad_tuned_files_are_refused_with_the_reason(tuned_dir, change, message):
    path = _write(tuned_dir, **change)
    if "gpu" in change:  # written under the other GPU's name: rename to the tested GPU's slug
        path = path.rename(tuned_dir / f"{gpu_slug(GPU)}.json")
    with pytest.raises(TunedFileError, match=message) as info:
        pick_reduce_conv_config("float16", "ieee", GPU)
    assert str(path) in str(info.value)
    (tuned_dir / f"{gpu_slug(GPU)}.json").write_text("{not json")
    tuned_configs.clear_cache()
    with pytest.raises(TunedFileError, match="not JSON"):
        pick_reduce_conv_config("float16", "ieee", GPU)


def test_shipped_tuned_files_are_valid():
    """Every JSON file under kernels/tuned/ loads, validated, and chooses something: a config or a
    tactic (the H200's file records tactics only)."""
    files = sorted(tuned_configs.SHIPPED_DIR.glob("*.json"))
    assert files, "kernels/tuned/ holds the H200's file"
    tables = tuned_configs.shipped_tables()
    assert [Path(t.path) for t in tables] == files
    for table in tables:
        assert table.choices or table.tactics, f"{table.path} chooses nothing"


def test_shipped_tables_lists_and_validates_every_file(tmp_path, monkeypatch):
    """shipped_tables() (what compile-check compiles) sees each file of the shipped directory and
    refuses a bad one, so the test above cannot pass by looking in the wrong place."""
    monkeypatch.setattr(tuned_configs, "SHIPPED_DIR", tmp_path)
    assert tuned_configs.shipped_tables() == []
    good = _write(tmp_path, [_choice("pointwise_pool", "float16", "ieee", "n32")])
    (table,) = tuned_configs.shipped_tables()
    assert Path(table.path) == good and len(table.choices) == 1
    _write(tmp_path, [], gpu="Other GPU", schema=99)
    with pytest.raises(TunedFileError):
        tuned_configs.shipped_tables()


def test_forward_launches_the_tuned_configs(tuned_dir):
    """The library's own forward (recorded on meta tensors) launches a GPU's tuned choices, and
    compile-check's launched set includes them."""
    _write(tuned_dir, [_choice("pointwise_pool", "bfloat16", "ieee", "s4"),
                       _choice("pointwise_pool", "float16", "ieee", "n32")])
    recs = aot.record_googlenet_launches(batches=(2,), models=("torchvision",), gpu=GPU)
    fp16 = [r for r in recs if r.dtype == "float16" and r.kernel == "pointwise_pool"]
    assert fp16 and all(r.kwargs["BLOCK_N"] == 32 and r.kwargs["num_stages"] == 3 for r in fp16)
    bf16 = [r for r in recs if r.dtype == "bfloat16" and r.kernel == "pointwise_pool"]
    assert bf16 and all(r.kwargs["BLOCK_N"] == 64 and r.kwargs["num_stages"] == 4 for r in bf16)
    # a row the file does not list keeps its default
    conv = [r for r in recs if r.dtype == "bfloat16" and r.kernel == "reduce_conv"]
    assert conv and all(r.kwargs["BLOCK_HALO"] == REDUCE_CONV_CONFIGS["mma"].BLOCK_HALO for r in conv)
    variants = aot.googlenet_launch_variants(batches=(2,), gpus=[None, GPU])
    names = {(v.kernel, v.dtype, v.config_name) for v in variants}
    assert {("pointwise_pool", "bfloat16", "s4"), ("pointwise_pool", "bfloat16", "default"),
            ("pointwise_pool", "float16", "n32"), ("pointwise_pool", "float16", "default")} <= names


def test_compile_check_covers_shipped_tuned_files(tmp_path, monkeypatch):
    monkeypatch.setattr(tuned_configs, "SHIPPED_DIR", tmp_path)
    monkeypatch.delenv(tuned_configs.ENV_DIR, raising=False)
    tuned_configs.clear_cache()
    try:
        assert not any(v.config_name == "n32" for v in aot.googlenet_launch_variants(batches=(2,)))
        _write(tmp_path, [_choice("pointwise_pool", "float32", "tf32", "n32")])
        variants = aot.googlenet_launch_variants(batches=(2,))
        assert any(v.config_name == "n32" and v.dtype == "float32" for v in variants)
    finally:
        tuned_configs.clear_cache()


def test_gpu_name_is_none_off_cuda():
    assert forward.gpu_name(torch.zeros(1)) is None


# ---------------------------------------------------------------- the tuner

# (kernel, dtype, dot precision) per dot class; the interpreter stands in: fp16 for bf16 (its bf16
# dot is wrong, docs/DESIGN.md §6) and IEEE arithmetic on TF32-rounded operands for TF32
_CLASS_ROWS = {"mma": ("float16", "ieee"), "tf32": ("float32", "tf32"), "fma": ("float32", "ieee")}
_ALL_CANDIDATES = [(kernel, cls, name) for (kernel, cls), names in CANDIDATES.items() for name in names]


def _seed(gen) -> int:
    return int(torch.randint(0, 2**31 - 1, (1,), generator=gen))


@pytest.mark.parametrize("kernel, cls, name", _ALL_CANDIDATES, ids=["-".join(c) for c in _ALL_CANDIDATES])
def test_every_candidate_matches_float64(kernel, cls, name, gen):
    """Each tuning candidate on a GoogLeNet block (signed input, nonzero BN statistics, NaN-poisoned
    output) against the float64 block. 2 x 9 x 9 = 162 pixels: several pixel tiles, the last one
    partial, and with BLOCK_M 32 more tiles than the interpreter's 4 persistent programs."""
    dtype, precision = _CLASS_ROWS[cls]
    block = "3a" if kernel == "reduce_conv" else "4a"
    (case,) = tune.make_cases([block], getattr(torch, dtype), 2, DEVICE, torch.channels_last, _seed(gen), hw=9)
    call, slices = tune.kernel_call(kernel, case, config_by_name(kernel, name), precision)
    key = "tf32" if precision == "tf32" else dtype
    result = tune.check_call(call, case, slices, key)
    assert result.passed, result


def _scripted_timer(times):
    """A timer returning the given ms in turn (one call per candidate and block)."""
    it = iter(times)

    def timer(call):
        return next(it)
    return timer


def test_tuner_chooses_the_fastest_and_writes_a_usable_file(tuned_dir, gen):
    rows = [("pointwise_pool", "float16", "ieee"), ("pointwise_pool", "float32", "ieee")]
    n_conv = len(candidate_names(*rows[0]))
    n_point = len(candidate_names(*rows[1]))
    # float16: the second candidate fastest; float32: the default fastest
    times = [3.0, 1.0] + [2.0] * (n_conv - 2) + [1.0] + [4.0] * (n_point - 1)
    lines = []
    doc = tune.tune(rows, ["3a"], 1, device=DEVICE, gpu=GPU, timer=_scripted_timer(times), budget_s=600,
                    seed=_seed(gen), hw=4, progress=lines.append)
    conv, point = doc["choices"]
    assert conv["config"] == candidate_names(*rows[0])[1] and conv["speedup_vs_default"] == 3.0
    assert point["config"] == candidate_names(*rows[1])[0] and point["speedup_vs_default"] == 1.0
    assert set(conv["median_ms"]) == set(candidate_names(*rows[0])) and not conv["rejected"]
    assert conv["median_ms_per_block"][conv["config"]] == {"3a": 1.0}
    assert doc["tuned"]["incomplete"] == [] and len(lines) == 2
    path = tuned_dir / f"{gpu_slug(GPU)}.json"
    path.write_text(json.dumps(doc))
    assert pick_pointwise_config("float16", "ieee", GPU) == config_by_name("pointwise_pool", conv["config"])
    assert pick_pointwise_config("float32", "ieee", GPU) == config_by_name("pointwise_pool", point["config"])
    assert "pointwise_pool" in tune.format_choices(doc)


def test_tuner_keeps_the_default_unless_clearly_faster(gen):
    row = ("pointwise_pool", "float32", "ieee")
    n = len(candidate_names(*row))
    # the second candidate is 1% faster than the default: within the noise margin (MIN_GAIN)
    times = [1.0, 0.99] + [1.5] * (n - 2)
    doc = tune.tune([row], ["3a"], 1, device=DEVICE, gpu=GPU, timer=_scripted_timer(times), budget_s=600,
                    seed=_seed(gen), hw=3)
    (entry,) = doc["choices"]
    assert tune.MIN_GAIN > 0.01
    assert entry["config"] == entry["default"] and entry["speedup_vs_default"] == 1.0
    assert entry["median_ms"][candidate_names(*row)[1]] == 0.99


def test_tuner_skips_rows_with_one_candidate(gen):
    row = ("reduce_conv", "float32", "tf32")
    assert len(candidate_names(*row)) == 1
    lines = []
    doc = tune.tune([row], ["3a"], 1, device=DEVICE, gpu=GPU, timer=_scripted_timer([]), budget_s=600,
                    seed=_seed(gen), hw=3, progress=lines.append)
    assert doc["choices"] == [] and doc["tuned"]["incomplete"] == [] and "nothing to tune" in lines[0]


def test_tuner_rejects_a_wrong_candidate_however_fast(monkeypatch, gen):
    row = ("pointwise_pool", "float32", "ieee")
    names = candidate_names(*row)
    broken = names[1]
    real_call = tune.kernel_call

    def kernel_call(kernel, case, config, precision):
        call, slices = real_call(kernel, case, config, precision)
        if config == config_by_name(kernel, broken):
            def wrong():
                call()
                case.out[0, slices[0].start, 0, 0] += 1.0  # one wrong element
            return wrong, slices
        return call, slices

    monkeypatch.setattr(tune, "kernel_call", kernel_call)
    times = [2.0] + [1.5] * (len(names) - 2)  # the broken one is never timed
    doc = tune.tune([row], ["3a"], 1, device=DEVICE, gpu=GPU, timer=_scripted_timer(times), budget_s=600,
                    seed=_seed(gen), hw=3)
    (entry,) = doc["choices"]
    assert broken in entry["rejected"] and "FAIL" in entry["rejected"][broken]
    assert broken not in entry["median_ms"] and entry["config"] != broken

    # a wrong default is a kernel bug: the row is recorded as failed (no choice), the next row is tuned
    broken = names[0]
    other = ("reduce_conv", "float32", "ieee")
    n_other = len(candidate_names(*other))
    docs = []
    doc = tune.tune([row, other], ["3a"], 1, device=DEVICE, gpu=GPU, timer=_scripted_timer([1.0] * n_other),
                    budget_s=600, seed=_seed(gen), hw=3, on_row=docs.append)
    (failed,) = doc["tuned"]["failed"]
    assert failed["row"] == "pointwise_pool float32 ieee" and "default pointwise_pool config" in failed["error"]
    assert "FAIL" in failed["error"]
    assert [c["kernel"] for c in doc["choices"]] == (["reduce_conv"] if n_other > 1 else [])


def _break_candidate(monkeypatch, row: tuple[str, str, str], message: str) -> str:
    """Make the row's second candidate raise RuntimeError(message) when called; its name."""
    broken = candidate_names(*row)[1]
    real_call = tune.kernel_call

    def kernel_call(kernel, case, config, precision):
        if config == config_by_name(kernel, broken):
            raise RuntimeError(message)
        return real_call(kernel, case, config, precision)

    monkeypatch.setattr(tune, "kernel_call", kernel_call)
    return broken


def test_tuner_rejects_a_candidate_that_raises_and_writes_row_by_row(monkeypatch, gen):
    """A candidate that fails to compile or launch is rejected with the error, not fatal; the
    document goes to on_row after every row, the rows not yet tried listed as incomplete."""
    row = ("pointwise_pool", "float32", "ieee")
    names = candidate_names(*row)
    broken = _break_candidate(monkeypatch, row, "triton.CompilationError: out of resources (simulated)")
    docs = []
    times = [2.0] + [1.5] * (2 * len(names))
    doc = tune.tune([row, row], ["3a"], 1, device=DEVICE, gpu=GPU, timer=_scripted_timer(times), budget_s=600,
                    seed=_seed(gen), hw=3, on_row=docs.append)
    assert len(docs) == 2
    assert docs[0]["tuned"]["incomplete"] == ["pointwise_pool float32 ieee"] and len(docs[0]["choices"]) == 1
    assert docs[1]["tuned"]["incomplete"] == [] and len(docs[1]["choices"]) == 2 == len(doc["choices"])
    entry = doc["choices"][0]
    assert "simulated" in entry["rejected"][broken] and broken not in entry["median_ms"]
    assert entry["config"] != broken and not doc["tuned"]["failed"]


def test_tuner_stops_when_an_error_leaves_the_device_unusable(monkeypatch, gen):
    """A sticky device error (as CUDA's illegal address) would fail every later candidate for the
    wrong reason: the row is failed with both errors, tuning stops, the later rows stay incomplete."""
    row = ("pointwise_pool", "float32", "ieee")
    _break_candidate(monkeypatch, row, "CUDA error: an illegal memory access was encountered (simulated)")
    monkeypatch.setattr(tune_rules, "device_error", lambda device: "AcceleratorError: illegal memory access (sticky)")
    docs = []
    doc = tune.tune([row, row], ["3a"], 1, device=DEVICE, gpu=GPU, timer=_scripted_timer([1.0] * 4),
                    budget_s=600, seed=_seed(gen), hw=3, on_row=docs.append)
    assert docs == [doc] and doc["choices"] == []
    (failed,) = doc["tuned"]["failed"]
    assert failed["row"] == "pointwise_pool float32 ieee"
    assert "simulated" in failed["error"] and "unusable" in failed["error"] and "sticky" in failed["error"]
    assert doc["tuned"]["incomplete"] == ["pointwise_pool float32 ieee"]


def test_device_error_is_none_off_cuda():
    assert tune_rules.device_error(torch.device("cpu")) is None


def test_tuner_budget_leaves_rows_at_their_default(gen):
    rows = [("pointwise_pool", "float32", "ieee")]
    doc = tune.tune(rows, ["3a"], 1, device=DEVICE, gpu=GPU, timer=_scripted_timer([]), budget_s=0,
                    seed=_seed(gen), hw=3)
    assert doc["choices"] == [] and doc["tuned"]["incomplete"] == ["pointwise_pool float32 ieee"]


def test_check_call_sees_unwritten_outputs(gen):
    (case,) = tune.make_cases(["3a"], torch.float32, 1, DEVICE, torch.channels_last, _seed(gen), hw=3)
    result = tune.check_call(lambda: None, case, [slice(0, 4)], "float32")
    assert not result.passed and not result.all_finite
    assert math.isnan(float(case.out[0, 0, 0, 0]))


def test_tune_command_refuses_without_cuda(monkeypatch, capsys):
    from fused_inception.tools.cli import main

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["tune", "--dtypes", "bf16"]) == 2
    assert "tune needs a CUDA GPU" in capsys.readouterr().out


def test_parse_rows():
    assert tune.parse_rows(["bf16", "tf32"], ["reduce_conv"]) == [("reduce_conv", "bfloat16", "ieee"),
                                                                 ("reduce_conv", "float32", "tf32")]
    with pytest.raises(ValueError, match="unknown dtype"):
        tune.parse_rows(["fp8"], ["reduce_conv"])
    with pytest.raises(ValueError, match="unknown kernel"):
        tune.parse_rows(["bf16"], ["conv"])


def test_reports_record_the_launched_configs(tuned_dir):
    """bench/parity reports record, per kernel, dtype and precision, the config launched and
    whether it came from the GPU's tuned file; an invalid file is recorded as refused."""
    from fused_inception.tools.environment import kernel_configs

    rows, source = kernel_configs(None)
    assert source is None and not any(r["tuned"] for r in rows) and len(rows) == len(default_configs())
    path = _write(tuned_dir, [_choice("pointwise_pool", "bfloat16", "ieee", "n32s4")])
    rows, source = kernel_configs(GPU)
    assert source == str(path)
    tuned = [(r["kernel"], r["dtype"], r["config"]) for r in rows if r["tuned"]]
    assert tuned == [("pointwise_pool", "bfloat16", "n32s4")]
    bad = _choice("reduce_conv", "bfloat16", "ieee", "fma")
    path.write_text(json.dumps({"schema": 1, "gpu": GPU, "choices": [bad]}))
    tuned_configs.clear_cache()
    rows, source = kernel_configs(GPU)
    assert rows == [] and source.startswith("refused:") and "not a candidate" in source


@pytest.mark.skipif(not torch.cuda.is_available(), reason="times CUDA events on a GPU")
def test_stream_timer_hides_host_time_behind_queued_gpu_work():
    """The tactic rows' timer charges a call its GPU time when the host is faster than the GPU, as a
    block inside a network is charged (do_bench, starting each call on an idle GPU, would add the
    host time: ~1.5x here)."""
    import time

    cycles = 2_000_000  # ~1 ms of GPU time at H100/H200 clocks

    def gpu_only():
        torch.cuda._sleep(cycles)

    gpu_ms = tune_rules.stream_timer(gpu_only)

    def host_then_gpu():
        time.sleep(gpu_ms / 2e3)  # half the GPU time on the host, before the launch
        torch.cuda._sleep(cycles)

    assert tune_rules.stream_timer(host_then_gpu) == pytest.approx(gpu_ms, rel=0.15)

    def slow_host():
        time.sleep(gpu_ms * 2 / 1e3)  # twice the GPU time: now the host is what is charged
        torch.cuda._sleep(cycles)

    assert tune_rules.stream_timer(slow_host) == pytest.approx(2 * gpu_ms, rel=0.25)


@pytest.mark.parametrize("kernel, name, has_aligned", [("reduce_conv", "mma", True),
                                                       ("reduce_conv", "mma-64", False),
                                                       ("reduce_conv", "mma-l1", True),
                                                       ("pointwise_pool", "default", True),
                                                       ("pointwise_pool", "np64", False)])
def test_choices_with_and_without_aligned_tiles_read_back(tuned_dir, kernel, name, has_aligned):
    """A tuned file stores a config's fields as JSON; a default's aligned tiles (nested configs
    per arch) must read back as the same fields, or every file naming it would be refused."""
    _write(tuned_dir, [_choice(kernel, "bfloat16", "ieee", name)])
    pick = pick_pointwise_config if kernel == "pointwise_pool" else pick_reduce_conv_config
    assert pick("bfloat16", "ieee", GPU) == config_by_name(kernel, name)
    assert bool(config_by_name(kernel, name).aligned) == has_aligned
