"""TV-L1 flow extraction: JPEG coding, flow physics, output layout, resume and bad videos."""

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from kerasflow.data import tvl1
from kerasflow.data.tvl1 import (
    decode_flow,
    encode_flow,
    extract_all,
    extract_video,
    find_sources,
    iter_grey_frames,
    iter_tvl1_flow,
)
from kerasflow.data.video import BadVideo

TOOL = Path(__file__).resolve().parents[1] / "tools" / "extract_flow.py"
SIZE = 64
STEP = 40 / 255  # one grey level in pixels for bound 20


def smooth_texture(seed, size=160):
    """A blurred random texture, uint8 (size, size): trackable everywhere, no repeating pattern."""
    noise = np.random.default_rng(seed).random((size, size)).astype(np.float32)
    blurred = cv2.GaussianBlur(noise, (0, 0), 3)
    return cv2.normalize(blurred, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)


def moving_frames(count, dx=0, dy=0, seed=0):
    """Grey 64x64 crops of a texture whose content moves by (dx, dy) pixels per frame."""
    texture = smooth_texture(seed)
    top, left = 40, 40
    return [
        texture[top - i * dy: top - i * dy + SIZE, left - i * dx: left - i * dx + SIZE].copy()
        for i in range(count)
    ]


def write_frame_folder(folder, frames, pattern="image_{:05d}.jpg"):
    folder.mkdir(parents=True)
    for index, frame in enumerate(frames, start=1):
        cv2.imwrite(str(folder / pattern.format(index)), cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))


def write_video(path, frames):
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (SIZE, SIZE))
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))
    writer.release()


def read_flow(out_root, rel, index):
    x = cv2.imread(str(out_root / "flow_x" / rel / f"flow_x_{index:05d}.jpg"), cv2.IMREAD_UNCHANGED)
    y = cv2.imread(str(out_root / "flow_y" / rel / f"flow_y_{index:05d}.jpg"), cv2.IMREAD_UNCHANGED)
    assert x.dtype == np.uint8 and x.ndim == 2 and y.shape == x.shape
    return decode_flow(x, y)


def run_tool(*args):
    return subprocess.run([sys.executable, str(TOOL), *map(str, args)], capture_output=True, text=True)


# (a) coding ------------------------------------------------------------------------------------


def test_encode_known_values():
    flow = np.array([[[0.0, 20.0], [-25.0, 25.0], [10.0, -20.0]]], dtype=np.float32)
    x, y = encode_flow(flow)
    assert x.dtype == np.uint8 and x.shape == (1, 3)
    np.testing.assert_array_equal(x, [[128, 0, 191]])  # 127.5 -> 128; clipped; 191.25 -> 191
    np.testing.assert_array_equal(y, [[255, 255, 0]])


def test_encode_decode_round_trip_within_half_a_grey_level():
    flow = np.random.default_rng(1).uniform(-20, 20, size=(16, 24, 2)).astype(np.float32)
    decoded = decode_flow(*encode_flow(flow))
    assert decoded.dtype == np.float32 and decoded.shape == flow.shape
    error = np.abs(decoded - flow).max()
    assert error <= STEP / 2 + 1e-5
    assert error > STEP / 4  # it is quantised, not passed through
    # another bound scales the step
    small = np.clip(flow, -5, 5)
    assert np.abs(decode_flow(*encode_flow(small, bound=5), bound=5) - small).max() <= 5 / 255 + 1e-5


# (b) physics -----------------------------------------------------------------------------------


def test_tvl1_flow_measures_a_known_shift():
    flows = list(iter_tvl1_flow(moving_frames(3, dx=2)))
    assert len(flows) == 2
    assert flows[0].shape == (SIZE, SIZE, 2) and flows[0].dtype == np.float32
    inner = flows[0][8:-8, 8:-8]
    assert inner[..., 0].mean() == pytest.approx(2.0, rel=0.05)
    assert abs(inner[..., 1].mean()) < 0.1


def test_extracted_jpegs_decode_to_the_shift_and_frames_sort_numerically(tmp_path):
    src, out = tmp_path / "src", tmp_path / "out"
    # unpadded names: a lexical sort (1, 10, 2, ...) would give shifts of +9 and -8
    write_frame_folder(src / "right", moving_frames(10, dx=2), pattern="frame_{}.png")
    write_frame_folder(src / "down", moving_frames(4, dy=2, seed=3), pattern="frame_{}.png")
    summary = extract_all(src, out, workers=2)
    assert summary["extracted"] == 2 and not summary["failed"]
    for rel, pairs, (dx, dy) in (("right", 9, (2, 0)), ("down", 3, (0, 2))):
        for index in range(1, pairs + 1):
            inner = read_flow(out, rel, index)[8:-8, 8:-8]
            assert inner[..., 0].mean() == pytest.approx(dx, abs=0.3), (rel, index)
            assert inner[..., 1].mean() == pytest.approx(dy, abs=0.3), (rel, index)


def test_size_resizes_the_shorter_side(tmp_path):
    src, out = tmp_path / "src", tmp_path / "out"
    frames = [cv2.resize(frame, (SIZE, SIZE // 2)) for frame in moving_frames(3, dx=2)]  # 64 x 32
    write_frame_folder(src / "clip", frames, pattern="{}.png")
    result = extract_video(src / "clip", out, Path("clip"), size=48)
    assert (result["pairs"], result["width"], result["height"]) == (2, 96, 48)
    assert read_flow(out, "clip", 1).shape == (48, 96, 2)


def test_frames_of_mixed_sizes_are_resized_to_the_first(tmp_path):
    src, out = tmp_path / "src", tmp_path / "out"
    frames = moving_frames(4, dx=2)
    frames[2] = cv2.resize(frames[2], (48, 40))  # one odd frame in the folder
    write_frame_folder(src / "mixed", frames, pattern="{}.png")
    greys = list(iter_grey_frames(src / "mixed"))
    assert [grey.shape for grey in greys] == [(SIZE, SIZE)] * 4
    np.testing.assert_array_equal(greys[1], frames[1])
    expected = cv2.resize(frames[2], (SIZE, SIZE), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(greys[2], expected)
    # with --size the shorter side is scaled as the loader scales it: 64 x 64 -> 48 x 48
    assert {grey.shape for grey in iter_grey_frames(src / "mixed", size=48)} == {(48, 48)}
    summary = extract_all(src, out, workers=1)
    assert summary["extracted"] == 1 and not summary["failed"]
    assert all(read_flow(out, "mixed", index).shape == (SIZE, SIZE, 2) for index in (1, 2, 3))


@pytest.mark.parametrize("error", [OSError(28, "No space left on device"), cv2.error("(-215:Assertion failed) x")])
def test_opencv_and_file_errors_become_bad_videos(tmp_path, monkeypatch, error):
    src, out = tmp_path / "src", tmp_path / "out"
    write_frame_folder(src / "clip", moving_frames(3, dx=1))

    def failing_write(path, image):
        raise error

    monkeypatch.setattr(tvl1, "_write_jpeg", failing_write)
    with pytest.raises(BadVideo) as caught:
        extract_video(src / "clip", out, Path("clip"))
    assert caught.value.path == str(src / "clip") and type(error).__name__ in caught.value.reason
    reported = tvl1._extract_or_report(src / "clip", out, Path("clip"), 20, None)  # what a worker returns
    assert reported["error"].startswith(f"{src / 'clip'}: {type(error).__name__}: ")
    assert not (out / "flow_x" / "clip").exists() and not list((out / ".flow_partial").iterdir())


# (c) layout ------------------------------------------------------------------------------------


def test_layout_names_and_counts(tmp_path):
    src, out = tmp_path / "frames", tmp_path
    write_frame_folder(src / "S1" / "close_jam" / "1", moving_frames(5, dx=1))
    write_frame_folder(src / "S1" / "close_jam" / "2", moving_frames(4, dx=-1))
    write_video(src / "S2" / "odd" / "a (1), b!.avi", moving_frames(6, dx=2))
    write_video(src / "S2" / "odd" / "UPPER.AVI", moving_frames(3, dy=1))
    (src / "S2" / "odd" / "notes.txt").write_text("not a video")
    (src / "S2" / "odd" / ".hidden.avi").write_bytes(b"")
    # course-copy clip: frames in rgb/, motion maps beside them; one clip, read from rgb/
    write_frame_folder(src / "S3" / "close_jam" / "1" / "rgb", moving_frames(3, dx=1), "rgb{:04d}.png")
    write_frame_folder(src / "S3" / "close_jam" / "1" / "mmaps", moving_frames(3), "map{:04d}.png")

    sources = find_sources(src)
    assert [p.relative_to(src).as_posix() for p in sources] == [
        "S1/close_jam/1", "S1/close_jam/2", "S2/odd/a (1), b!.avi", "S2/odd/UPPER.AVI", "S3/close_jam/1",
    ]
    summary = extract_all(src, out, workers=1)
    expected = {
        "S1/close_jam/1": 4, "S1/close_jam/2": 3,
        "S2/odd/a (1), b!": 5, "S2/odd/UPPER": 2,
        "S3/close_jam/1": 2,
    }
    for rel, pairs in expected.items():
        for component in ("x", "y"):
            folder = out / f"flow_{component}" / rel
            names = sorted(p.name for p in folder.glob("*.jpg"))
            assert names == [f"flow_{component}_{i:05d}.jpg" for i in range(1, pairs + 1)]
    assert not (out / ".flow_partial").exists()
    assert summary["extracted"] == 5 and summary["skipped"] == 0
    timing = json.loads((out / "flow_timing.json").read_text())
    assert set(timing["seconds"]) == set(expected)
    assert all(seconds > 0 for seconds in timing["seconds"].values())
    assert timing["mean_seconds"] == pytest.approx(sum(timing["seconds"].values()) / 5)
    assert timing["bound"] == 20 and timing["tvl1_parameters"]["Lambda"] == pytest.approx(0.15)
    # the output tree is not mistaken for sources when it lies inside SRC_ROOT
    assert len(find_sources(tmp_path, exclude=[out / "flow_x", out / "flow_y"])) == 5


def test_two_sources_with_one_output_are_refused(tmp_path):
    write_video(tmp_path / "src" / "clip.avi", moving_frames(3, dx=1))
    write_video(tmp_path / "src" / "clip.mp4", moving_frames(3, dx=1))
    result = run_tool(tmp_path / "src", tmp_path / "out")
    assert result.returncode == 2
    assert "would both write flow_x/clip" in result.stderr.strip().splitlines()[-1]


# (d) resume ------------------------------------------------------------------------------------


def test_resume_skips_finished_and_redoes_unfinished(tmp_path):
    src, out = tmp_path / "src", tmp_path / "out"
    write_video(src / "one.avi", moving_frames(4, dx=1))
    write_video(src / "two.avi", moving_frames(4, dx=2))
    first = extract_all(src, out, workers=2)
    assert first["extracted"] == 2
    stats = {p: p.stat() for p in out.glob("flow_*/*/*.jpg")}
    assert len(stats) == 12

    second = extract_all(src, out, workers=2)
    assert second["extracted"] == 0 and second["skipped"] == 2
    assert second["seconds"] == first["seconds"]  # timings of earlier runs are kept
    assert {p: p.stat().st_mtime_ns for p in stats} == {p: s.st_mtime_ns for p, s in stats.items()}

    # a crashed run: "two" lost its marker and holds a stray file; a partial folder is left over
    (out / "flow_x" / "two" / ".done").unlink()
    (out / "flow_x" / "two" / "flow_x_00099.jpg").write_bytes(b"half")
    (out / ".flow_partial" / "flow-stale" / "x").mkdir(parents=True)
    third = extract_all(src, out, workers=1)
    assert third["extracted"] == 1 and third["skipped"] == 1
    assert third["seconds"]["one"] == first["seconds"]["one"]
    for path, stat in stats.items():
        if path.parent.name == "one":
            assert path.stat().st_mtime_ns == stat.st_mtime_ns
        else:
            assert path.stat().st_ino != stat.st_ino  # rewritten
    assert sorted(p.name for p in (out / "flow_x" / "two").iterdir()) == [
        ".done", "flow_x_00001.jpg", "flow_x_00002.jpg", "flow_x_00003.jpg",
    ]
    assert not (out / ".flow_partial").exists()


def test_limit_processes_the_first_sources(tmp_path):
    src, out = tmp_path / "src", tmp_path / "out"
    for name in ("c", "a", "b"):
        write_video(src / f"{name}.avi", moving_frames(3, dx=1))
    summary = extract_all(src, out, workers=1, limit=2)
    assert list(summary["seconds"]) == ["a", "b"]
    assert not (out / "flow_x" / "c").exists()


# (e) bad inputs --------------------------------------------------------------------------------


def make_tree_with_bad_sources(src):
    write_video(src / "good.avi", moving_frames(4, dx=1))
    src.joinpath("corrupt.avi").write_bytes(b"\x00garbage" * 200)
    src.joinpath("empty.mp4").write_bytes(b"")
    write_frame_folder(src / "single", moving_frames(1))


def test_bad_videos_are_reported_and_skipped(tmp_path):
    src, out = tmp_path / "src", tmp_path / "out"
    make_tree_with_bad_sources(src)
    summary = extract_all(src, out, workers=2)
    assert list(summary["seconds"]) == ["good"]
    assert sorted(Path(p).name for p in summary["failed"]) == ["corrupt.avi", "empty.mp4", "single"]
    assert all(reason.startswith(f"{p}: ") for p, reason in summary["failed"].items())
    for name in ("corrupt", "empty", "single"):
        assert not (out / "flow_x" / name).exists() and not (out / "flow_y" / name).exists()
    timing = json.loads((out / "flow_timing.json").read_text())
    assert len(timing["failed"]) == 3 and timing["videos"] == 1


@pytest.mark.large
def test_cli_exit_codes(tmp_path):
    src, out = tmp_path / "src", tmp_path / "out"
    make_tree_with_bad_sources(src)

    lenient = run_tool(src, out, "--workers", "1")
    assert "1 extracted, 0 already done, 3 failed" in lenient.stdout
    assert f"failed: {src / 'corrupt.avi'}: " in lenient.stdout
    assert "s per video (mean over 1)" in lenient.stdout
    # The others are done, then the command fails, naming what failed.
    assert lenient.returncode == 2, lenient.stderr
    assert (out / "flow_x" / "good" / ".done").exists()
    bad = ", ".join(str(src / name) for name in ("corrupt.avi", "empty.mp4", "single"))
    assert [line for line in lenient.stderr.splitlines() if line.startswith("error:")] == [
        lenient.stderr.strip().splitlines()[-1]] == [
        f"error: 3 of 4 videos failed ({bad}); the others are done. Repair or remove those (the reasons are "
        "above), then run the same command again"]
    again = run_tool(src, out, "--workers", "1")
    assert again.returncode == 2 and "0 extracted, 1 already done, 3 failed" in again.stdout

    strict = run_tool(src, tmp_path / "out_strict", "--workers", "1", "--strict")
    assert strict.returncode == 2
    errors = [line for line in strict.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(f"error: bad video {src / 'corrupt.avi'}: ")

    missing = run_tool(tmp_path / "nowhere", out)
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines() == [
        f"error: source folder {tmp_path / 'nowhere'} does not exist; pass the folder holding the videos"
    ]

    (tmp_path / "no_videos").mkdir()
    (tmp_path / "no_videos" / "readme.txt").write_text("x")
    nothing = run_tool(tmp_path / "no_videos", out)
    assert nothing.returncode == 2
    assert len(nothing.stderr.strip().splitlines()) == 1 and "holds no videos" in nothing.stderr
