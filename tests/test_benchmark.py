"""python -m kerasflow.benchmark at tiny size: every requested model is timed and the JSON report is complete."""

import json
import math

import pytest

from kerasflow import benchmark
from kerasflow.models.kinds import kind_names


def test_tiny_benchmark_reports_every_model(tmp_path, capsys):
    import keras

    out = tmp_path / "bench.json"
    kinds = ["rgb", "representation_flow", "two_stream", "optical_flow", "two_stream_optical_flow"]
    assert sorted(kinds) == sorted(kind_names())
    status = benchmark.main([
        "--models", ",".join(kinds), "--backbone", "tiny", "--frame-size", "32", "--rgb-frames", "4",
        "--flow-frames", "4", "--flow-stack", "2", "--classes", "3", "--repeats", "1", "--warmup", "0",
        "--json", str(out),
    ])
    assert status == 0
    report = json.loads(out.read_text())
    assert [entry["model"] for entry in report["models"]] == kinds
    for entry in report["models"]:
        seconds = entry["seconds_per_video"]
        times = [entry["first_call_s"], entry["median_s_per_video"], entry["min_s_per_video"], *seconds]
        assert all(math.isfinite(t) and t > 0 for t in times), entry
        assert len(seconds) == 1 and entry["median_s_per_video"] == entry["min_s_per_video"] == seconds[0]
        assert entry["params"] > 0
    by_kind = {entry["model"]: entry for entry in report["models"]}
    # Input shapes as the recipe's data section sets them (batch 1).
    assert by_kind["rgb"]["inputs"] == {"rgb": [1, 4, 32, 32, 3]}
    assert by_kind["optical_flow"]["inputs"] == {"flow": [1, 32, 32, 4]}
    assert by_kind["two_stream_optical_flow"]["inputs"] == {"rgb": [1, 4, 32, 32, 3], "flow": [1, 32, 32, 4]}
    # A joint model = both stream bodies + one Dense over the concatenated features: the two
    # single-stream models' parameters minus one classifier bias (3 classes).
    for joint, flow in (("two_stream", "representation_flow"), ("two_stream_optical_flow", "optical_flow")):
        assert by_kind[joint]["params"] == by_kind["rgb"]["params"] + by_kind[flow]["params"] - 3
    assert report["tvl1"] is None and report["totals"] == []
    assert report["environment"]["device"] and report["environment"]["cpu"]
    assert keras.mixed_precision.global_policy().name == "float32"
    printed = capsys.readouterr().out
    assert all(kind in printed for kind in kinds) and "median s/video" in printed


def test_tvl1_video_is_timed_and_added_to_the_optical_flow_model(tmp_path):
    clip = benchmark.write_synthetic_clip(tmp_path, frames=5, width=64, height=48)
    out = tmp_path / "bench.json"
    benchmark.main([
        "--models", "optical_flow", "--backbone", "tiny", "--frame-size", "32", "--flow-stack", "2",
        "--repeats", "1", "--warmup", "0", "--tvl1-video", str(clip), "--json", str(out),
    ])
    report = json.loads(out.read_text())
    tvl1 = report["tvl1"]
    assert (tvl1["pairs"], tvl1["frame_width"], tvl1["frame_height"]) == (4, 64, 48)
    assert tvl1["seconds"] > 0 and tvl1["seconds_per_pair"] == pytest.approx(tvl1["seconds"] / 4)
    [total] = report["totals"]
    assert total["model"] == "optical_flow + TV-L1"
    assert total["seconds_per_video"] == pytest.approx(tvl1["seconds"] + report["models"][0]["median_s_per_video"])


def test_tvl1_runs_on_one_opencv_thread_like_extract_flow_workers(tmp_path):
    import cv2

    clip = benchmark.write_synthetic_clip(tmp_path, frames=3, width=64, height=48)
    threads = cv2.getNumThreads()
    result = benchmark.time_tvl1(clip, size=24)
    assert (result["frame_width"], result["frame_height"], result["pairs"]) == (32, 24, 2)  # 48 x 64 -> 24 x 32
    assert result["opencv_threads"] == 1 and cv2.getNumThreads() == threads


def test_totals_add_tvl1_to_optical_flow_models():
    models = [{"model": "two_stream", "median_s_per_video": 0.2},
              {"model": "two_stream_optical_flow", "median_s_per_video": 0.125}]
    totals = benchmark.totals_with_tvl1(models, {"seconds": 25.25})
    assert totals == [{"model": "two_stream_optical_flow + TV-L1", "seconds_per_video": 25.375}]
    assert benchmark.totals_with_tvl1(models, None) == []


def test_bad_settings_exit_with_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        benchmark.main(["--models", "representation_flow", "--flow-frames", "2", "--backbone", "tiny"])
    assert exit_info.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "--flow-frames 2" in errors[0]
    with pytest.raises(SystemExit) as exit_info:
        benchmark.main(["--tvl1-video", str(tmp_path / "missing.avi"), "--backbone", "tiny"])
    assert exit_info.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert errors == [f"error: --tvl1-video {tmp_path / 'missing.avi'} does not exist; pass a video file or frame folder"]
