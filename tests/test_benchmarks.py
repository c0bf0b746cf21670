"""``python -m benchmarks --smoke`` completes and reports every section (no timing asserts)."""

import json

import pytest

from tests.helpers import run_python


@pytest.mark.heavy
def test_smoke_benchmark_reports_every_field(tmp_path):
    output = tmp_path / "results.json"
    result = run_python(["-m", "benchmarks", "--smoke", f"--output={output}"], timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    results = json.loads(output.read_text())
    for key in ("machine", "scaling", "matmul_peak_gflop_per_s", "rstg_fraction_of_peak",
                "streaming_ms", "xla_precision_s", "input", "memory", "goals", "send_only"):
        assert key in results, key
    variants = {r["variant"] for r in results["scaling"]["rows"]}
    assert variants == {"rstg", "rstg_naive_send", "non_local", "full_graph"}
    for row in results["scaling"]["rows"]:
        for field in ("forward_clips_per_s", "train_clips_per_s", "forward_gflop_per_s"):
            assert row[field] > 0, (row, field)
    assert set(results["scaling"]["time_exponent_vs_T"]) == {
        "rstg/batch1", "rstg_naive_send/batch1", "non_local/batch1", "full_graph/batch1"}
    assert {"p50_ms", "p95_ms"} <= set(results["streaming_ms"]["batch1"])
    assert {f"batch{b}{s}" for b in (1, 8) for s in ("", "/xla", "/bf16")} == set(
        results["streaming_ms"])
    for key in ("batch1", "batch1/bf16", "batch8", "batch8/bf16"):
        assert results["streaming_ms"][key]["in_graph_ms"] > 0, key
    assert len(results["goals"]) == 12 and "goals (issue #6):" in result.stdout
    assert 0.0 <= results["input"]["input_wait_fraction"] <= 1.0
    assert results["send_only"]["forward_ratio"] > 0
    assert results["memory"]["peak_rss_mib"] > 0
    assert (tmp_path / "results.png").stat().st_size > 0
    assert "| goal | measured |" in (tmp_path / "results.md").read_text()
    assert "time exponent vs T" in result.stdout


def test_step_profile_reads_the_trace_back(tmp_path):
    output = tmp_path / "profile.json"
    result = run_python(["-m", "benchmarks.profile_step", "--node_dim=16", "--steps=4",
                         "--min_us=0", f"--output={output}"], timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    profile = json.loads(output.read_text())
    assert profile["compute_ms_per_step"] > 0 and profile["one_step_wall_ms"] > 0
    assert any("MatMul" in kind for kind in profile["ms_per_step_by_type"])
    assert "ReadVariableOp" not in profile["ms_per_step_by_type"]
    timeline = profile["one_step_timeline"]
    assert timeline and all(0 <= e["start_us"] <= 1e3 * profile["one_step_wall_ms"]
                            for e in timeline)
    assert "one step (" in result.stdout


@pytest.mark.heavy
def test_export_latency_times_each_weights_dtype(tmp_path):
    output = tmp_path / "latency.json"
    result = run_python(["-m", "benchmarks.export_latency", "--num_filters=8", "--node_dim=8",
                         "--steps=4", "--clips=2", "--rounds=2", f"--output={output}"],
                        timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    figures = json.loads(output.read_text())
    assert set(figures["rounds"]) == {"float32", "bfloat16"}
    for rounds in figures["rounds"].values():
        assert len(rounds) == 2
        for r in rounds:
            for signature in ("stream_step", "serving_default"):
                assert 0 < r[signature]["p50_ms"] <= r[signature]["p95_ms"], r
    assert result.stdout.count("stream_step p50") == 4
    bad = run_python(["-m", "benchmarks.export_latency", "--weights_dtypes=int8"])
    assert bad.returncode == 2 and "--weights_dtypes" in bad.stderr
    assert "Traceback" not in bad.stderr


def _check_any_backend(result):
    """The backend-neutral figures: every section, each with its FLOPs and peak share."""
    assert result["matmul_peak_gflop_per_s"]["float32"] > 0
    rows = result["block"]["rows"]
    assert {(r["T"], r["batch"]) for r in rows} == {(2, 2), (4, 2)}
    for row in rows:
        assert row["forward_ms"] > 0 and row["train_ms"] > 0 and row["forward_gflops"] > 0
        assert 0 < row["forward_share_of_peak"] and 0 < row["train_share_of_peak"]
    assert set(result["block"]["time_exponent_vs_T"]) == {"batch2/float32"}
    train = result["training"]["device_row"]
    assert train["clips_per_s"] > 0 and train["train_gflops_per_step"] > 0
    assert train["reference_schedule_hours"] > 0 and train["share_of_fp32_peak"] > 0
    assert result["streaming"]["p95_ms"] >= result["streaming"]["p50_ms"] > 0
    assert 0.0 <= result["input_wait"]["input_wait_share"] < 1.0


@pytest.mark.heavy
def test_smoke_benchmark_under_jax_without_tensorflow(tmp_path):
    """The GPU machine has JAX and no TensorFlow: python -m benchmarks runs the
    backend-neutral sections there."""
    from tests.helpers import without_tensorflow

    result = run_python([*without_tensorflow("benchmarks"), "--smoke",
                         f"--output={tmp_path / 'results.json'}"], KERAS_BACKEND="jax",
                        timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    figures = json.loads((tmp_path / "any_backend.json").read_text())
    assert figures["device"]["backend"] == "jax" and "tensorflow" not in figures["device"]
    _check_any_backend(figures)
    assert "| training step |" in (tmp_path / "any_backend.md").read_text()


@pytest.mark.heavy
def test_backend_neutral_sections_under_tensorflow(tmp_path):
    from benchmarks.any_backend import run

    figures = run("smoke", str(tmp_path))
    assert figures["device"]["backend"] == "tensorflow"
    _check_any_backend(figures)
