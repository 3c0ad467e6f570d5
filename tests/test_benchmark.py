"""python -m kerasflow.benchmark --quick runs every section and writes its JSON; FLOP counting and the
benchmark's clips are checked against known answers."""

import json
import os

import numpy as np
import pytest

from kerasflow import benchmark
from kerasflow.benchmarks import clips, suite
from kerasflow.benchmarks.measure import graph_flops

SECTIONS = ["environment", "quick", "sizes", "end_to_end", "flops", "memory", "training", "pipeline", "opencv_flow",
            "flow_layer", "export", "xla", "targets"]


@pytest.mark.large
def test_quick_benchmark_writes_every_section(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert benchmark.main(["--quick", "--repeats", "1", "--json", str(out), "--force"]) == 0
    report = json.loads(out.read_text())
    assert sorted(report) == sorted(SECTIONS)
    assert report["environment"]["load_per_core"] == pytest.approx(
        report["environment"]["load_average_1min"] / report["environment"]["cores"], abs=0.01)
    e2e = report["end_to_end"]
    assert e2e["tvl1_pairs_per_video"] == suite.QUICK["video"][0] - 1 and len(e2e["videos"]) == 2
    # 11 pairs, stacks of 2: one centre stack reads pairs 4-5; 10 stacks start at 0..9 and read all 11.
    assert [(row["stacks"], row["pairs"]) for row in e2e["read_pairs"]] == [(1, 2), (10, 11)]
    for row in e2e["read_pairs"]:
        assert row["tvl1_read_pairs_two_stream_s"] == pytest.approx(row["tvl1_read_pairs_s_per_video"]
                                                                    + row["optical_flow_model_s"])
        assert row["speedup_read_pairs"] == pytest.approx(row["tvl1_read_pairs_two_stream_s"]
                                                          / row["representation_flow_two_stream_s"])
    assert [(r["pairs"], r["side"], r["channels"], r["opencv_problems"]) for r in report["opencv_flow"]["rows"]] == \
        [(2, 32, 1, 2), (2, 8, 4, 8)]
    assert all(r["max_difference_px"] <= 1e-4 and r["speedup"] == pytest.approx(r["opencv_s"] / r["layer_s"])
               for r in report["opencv_flow"]["rows"])
    assert report["xla"]["auto_uses_xla"] is False and len(report["xla"]["rows"]) == 3  # no GPU here
    assert e2e["speedup"] == pytest.approx(e2e["tvl1_two_stream_s"] / e2e["representation_flow_two_stream_s"])
    assert e2e["speedup_bfloat16"] == pytest.approx(
        e2e["tvl1_two_stream_s"] / e2e["representation_flow_two_stream_bfloat16_s"])
    assert 0.0 <= e2e["bfloat16_max_prob_difference"] < 0.05  # same weights, a coarser number format
    flops = report["flops"]
    assert flops["flops_per_video"] == sum(part["flops"] for part in flops["parts"].values()) > 0
    assert flops["parts"]["ConvLSTM"]["flops"] > 0 and flops["parts"]["backbone"]["flops"] > 0
    assert set(report["training"]["paper"]) == {"rgb_stage1", "rgb_stage2", "flow", "joint"}
    assert all(stage["clips_per_s"] > 0 for stage in report["training"]["paper"].values())
    [row] = report["flow_layer"]["rows"]
    if report["flow_layer"]["torch"] is not None:
        assert row["parity_relative_difference"] <= 1e-4
    assert [t["target"] for t in report["targets"]] == [key for key, _, _ in suite.TARGETS]
    assert set(report["export"]) == {"saved_model", "tflite"}
    assert report["memory"]["training_peak_rss_mib"] >= report["memory"]["inference_peak_rss_mib"] > 0
    printed = capsys.readouterr().out
    assert "### 2b. RepresentationFlow layer vs PyTorch eager" in printed and f"results: {out}" in printed
    assert "target >= 4x at every shape on an idle machine; measured at" in printed
    assert "### 7. runtime.jit_compile (XLA): auto uses XLA here: no" in printed


def test_a_busy_machine_is_refused_in_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(suite.os, "getloadavg", lambda: (4.5, 3.0, 2.0))
    monkeypatch.setattr(suite.os, "sched_getaffinity", lambda pid: {0, 1})
    out = tmp_path / "bench.json"
    with pytest.raises(SystemExit) as exit_info:
        benchmark.main(["--quick", "--json", str(out)])
    assert exit_info.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert errors == ["error: the load average is 4.50 on 2 cores (above 1 per core): other processes would be timed "
                      "too; run on an idle machine, or pass --force to measure anyway"]
    assert not out.exists()
    monkeypatch.setattr(suite.os, "getloadavg", lambda: (2.0, 3.0, 2.0))  # 1 per core: measured
    assert suite.busy_load() is None


def test_read_pairs_are_the_test_stacks_pairs():
    from kerasflow.benchmarks.sections import read_pairs

    # 89 pairs (a 90-frame clip), stacks of 5: the centre stack starts at (89 - 5) // 2 = 42; ten stacks
    # start at floor(k * 85 / 10): 0, 8, 17, 25, 34, 42, 51, 59, 68, 76.
    assert read_pairs(89, 5, 1) == set(range(42, 47))
    assert read_pairs(89, 5, 10) == {s + k for s in (0, 8, 17, 25, 34, 42, 51, 59, 68, 76) for k in range(5)}
    assert len(read_pairs(89, 5, 10)) == 50


def test_opencv_runs_the_layers_settings():
    from kerasflow.benchmarks import opencv_flow

    tvl1 = opencv_flow.opencv_tvl1(20)
    assert (tvl1.getTau(), tvl1.getLambda(), tvl1.getTheta()) == pytest.approx((0.25, 0.15, 0.3))
    assert (tvl1.getScalesNumber(), tvl1.getWarpingsNumber(), tvl1.getInnerIterations(), tvl1.getOuterIterations(),
            tvl1.getMedianFiltering(), tvl1.getEpsilon(), tvl1.getGamma()) == (1, 1, 20, 1, 1, 0.0, 0.0)
    layer = opencv_flow.the_layer(20)
    assert (layer.theta, layer.tau, layer.lambda_, layer.n_iter) == pytest.approx((0.3, 0.25, 0.15, 20))
    assert (layer.image_gradient, layer.normalize) == ("central", "none")
    row = opencv_flow.compare(pairs=2, side=24, channels=3, iterations=5, repeats=1)
    assert row["max_difference_px"] <= opencv_flow.PARITY_PX and row["opencv_problems"] == 6


def test_flops_are_counted_from_convolutions_and_matmuls():
    import keras
    import tensorflow as tf

    inputs = keras.Input((6, 6, 3), batch_size=2)
    features = keras.layers.Conv2D(4, 3, name="conv")(inputs)  # 2 * (2*4*4*4) * (3*3*3) = 6912
    outputs = keras.layers.Dense(5, name="dense")(keras.layers.Flatten()(features))  # 2 * 2*5 * 64 = 1280
    model = keras.Model(inputs, outputs)
    concrete = tf.function(model).get_concrete_function(tf.TensorSpec((2, 6, 6, 3)))
    assert graph_flops(concrete, {"convs": ("conv",), "dense": ("dense",)}) == {"convs": 6912, "dense": 1280}


def test_every_convlstm_step_is_counted():
    import keras
    import tensorflow as tf

    from kerasflow.layers import ConvLSTM

    inputs = keras.Input((3, 4, 4, 2), batch_size=1)
    _, _, cell = ConvLSTM(5, name="convlstm")(inputs)
    concrete = tf.function(keras.Model(inputs, cell)).get_concrete_function(tf.TensorSpec((1, 3, 4, 4, 2)))
    # The input convolution over 3 frames, then a recurrent one at steps 2 and 3: 2 * outputs * 9 * C_in.
    assert graph_flops(concrete, {"ConvLSTM": ("convlstm",)}) == {
        "ConvLSTM": 2 * (3 * 16 * 20) * (9 * 2) + 2 * (2 * 16 * 20) * (9 * 5)}


def test_clips_have_a_1_over_f_spectrum_and_move(tmp_path):
    texture = clips.pink_texture(np.random.default_rng(0), 64, 64)
    power = np.abs(np.fft.fft2(texture - texture.mean())) ** 2
    assert power[1:3, 1:3].mean() > 100 * power[20:30, 20:30].mean()  # amplitude ~ 1/f: power ~ 1/f^2
    video = clips.render_clip(np.random.default_rng(0), 6, 48, 32)
    assert video.shape == (6, 32, 48, 3) and video.dtype == np.uint8
    assert all(np.abs(np.diff(video.astype(int), axis=0)).reshape(5, -1).mean(axis=1) > 1)
    [path] = clips.write_clips(tmp_path, 1, frames=4, width=48, height=32)
    assert path.name == "clip_0.avi" and path.stat().st_size > 0


def test_a_folder_without_videos_exits_with_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        benchmark.main(["--videos", str(tmp_path)])
    assert exit_info.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert errors == [f"error: --videos {tmp_path} holds no video files; pass a folder of .avi/.mp4 videos"]


def test_the_flow_layers_batch_8_is_left_out_where_memory_cannot_hold_it():
    assert suite.default_flow_batches(available=30e9) == ((1, 8), None)
    batches, why = suite.default_flow_batches(available=22.5e9)
    assert batches == (1,) and why == ("the flow layer's batch 8 is left out: a run with it peaked at 23 GB, it "
                                       "needs 25.3 GB available and 22.5 GB is")
    total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    assert 0 < suite.available_memory_bytes() <= total
