"""python -m kerasflow.benchmark --quick runs every section and writes its JSON; FLOP counting and the
benchmark's clips are checked against known answers."""

import json

import numpy as np
import pytest

from kerasflow import benchmark
from kerasflow.benchmarks import clips
from kerasflow.benchmarks.measure import graph_flops

SECTIONS = ["environment", "quick", "sizes", "end_to_end", "flops", "memory", "training", "pipeline", "flow_layer",
            "export", "targets"]


def test_quick_benchmark_writes_every_section(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert benchmark.main(["--quick", "--repeats", "1", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert sorted(report) == sorted(SECTIONS)
    e2e = report["end_to_end"]
    assert e2e["tvl1_pairs_per_video"] == benchmark.QUICK["video"][0] - 1 and len(e2e["videos"]) == 2
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
    assert [t["target"] for t in report["targets"]] == [key for key, _, _ in benchmark.TARGETS]
    assert set(report["export"]) == {"saved_model", "tflite"}
    assert report["memory"]["training_peak_rss_mib"] >= report["memory"]["inference_peak_rss_mib"] > 0
    printed = capsys.readouterr().out
    assert "### 2. RepresentationFlow layer vs PyTorch eager" in printed and f"results: {out}" in printed


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
