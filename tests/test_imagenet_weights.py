"""ImageNet weights by name, served from a loopback HTTP server (nothing leaves the machine): first
download and cache hit, wrong hash, truncated transfer, HTTP 404, server down, timeout, Ctrl-C, the
mirror variable; .pth files read without PyTorch (zip and legacy formats, equal to the same tensors as
safetensors) and a malicious pickle refused with nothing executed.

The checkpoint is tests/fixtures/resnet18-<sha256 prefix>.pth, a ResNet-18-layout state dict of small
random tensors written by PyTorch itself (tools/write_weights_fixture.py); the tests point the resnet18
preset at its name.
"""

import contextlib
import hashlib
import http.server
import os
import pickle
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import zipfile
from pathlib import Path

import numpy as np
import pytest
from cli_testing import ROOT, assert_one_error_line, call, tiny_recipe
from safetensors.numpy import load_file

from kerasflow.backbones import convert_file, from_preset, imagenet
from kerasflow.backbones.registry import PRESETS
from kerasflow.backbones.torch_file import read_torch_file
from kerasflow.errors import UserError

FIXTURES = ROOT / "tests" / "fixtures"
(CHECKPOINT,) = [path for path in FIXTURES.glob("resnet18-*.pth")
                 if re.fullmatch(r"resnet18-[0-9a-f]{8}\.pth", path.name)]
LEGACY = FIXTURES / "resnet18-small-legacy.pth"
SAFETENSORS = FIXTURES / "resnet18-small.safetensors"
NAME = CHECKPOINT.name
DATA = CHECKPOINT.read_bytes()
# the architecture tools/write_weights_fixture.py gives the checkpoint
SMALL = {"stackwise_num_filters": (4, 8, 8, 16), "stem_filters": 4, "num_head_classes": 10}
CONVERT = "python -m kerasflow.convert_weights"


class Server:
    """A loopback HTTP server on an ephemeral port serving ``files`` (name -> bytes); ``paths`` lists the
    requests. ``truncate``: send only that many bytes of a file (announcing its full length);
    ``delay``: seconds between 1 kB chunks."""

    def __init__(self, files, truncate=None, delay=0.0):
        self.files, self.truncate, self.delay, self.paths, self.sent = files, truncate, delay, [], threading.Event()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.paths.append(self.path)
                data = server.files.get(self.path.rsplit("/", 1)[-1])
                if data is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                data = data[:server.truncate] if server.truncate is not None else data
                with contextlib.suppress(ConnectionError):  # a client that stops reading (Ctrl-C)
                    for start in range(0, len(data), 1024):
                        self.wfile.write(data[start:start + 1024])
                        self.wfile.flush()
                        server.sent.set()
                        time.sleep(server.delay)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/models/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fresh ``KERASFLOW_HOME``, no mirror, no proxy, and the resnet18 preset naming the fixture."""
    for variable in ("KERASFLOW_WEIGHTS_URL", "http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY",
                     "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("KERASFLOW_HOME", str(tmp_path / "home"))
    monkeypatch.setitem(PRESETS["resnet18"], "imagenet_checkpoint", NAME)
    return tmp_path / "home"


@pytest.fixture
def serve(monkeypatch):
    """``serve(files, **options)``: start a ``Server`` and point ``KERASFLOW_WEIGHTS_URL`` at it."""
    servers = []

    def start(files, **options):
        servers.append(Server(files, **options))
        monkeypatch.setenv("KERASFLOW_WEIGHTS_URL", servers[-1].url)
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def cache_listing(home):
    folder = home / "weights"
    return sorted(os.listdir(folder)) if folder.is_dir() else []


def fetch_error(preset="resnet18"):
    with pytest.raises(UserError) as info:
        imagenet.imagenet_weights(preset)
    assert "\n" not in str(info.value)
    return str(info.value)


# --- .pth reading without PyTorch ---

def test_pth_reads_as_the_same_tensors_as_safetensors():
    expected = load_file(str(SAFETENSORS))
    for path in (CHECKPOINT, LEGACY):
        state = read_torch_file(path)
        assert sorted(state) == sorted(expected) and len(state) == 122
        for key, value in expected.items():
            assert state[key].dtype == value.dtype and state[key].shape == value.shape, key
            np.testing.assert_array_equal(state[key], value)
    assert read_torch_file(CHECKPOINT)["layer1.0.bn1.num_batches_tracked"].tolist() == 1000


def test_pth_and_safetensors_convert_to_identical_weights(tmp_path):
    backbones = [convert_file(path, tmp_path / f"{path.stem}.weights.h5", arch=None)
                 for path in (CHECKPOINT, LEGACY, SAFETENSORS)]
    reference = backbones[-1].get_weights()
    assert len(reference) == len(backbones[0].weights) > 100
    for backbone in backbones[:-1]:
        for got, want in zip(backbone.get_weights(), reference):
            np.testing.assert_array_equal(got, want)
    conv = load_file(str(SAFETENSORS))["layer3.1.conv2.weight"]
    np.testing.assert_array_equal(backbones[0].find_layer("layer3_1_conv2").kernel, conv.transpose(2, 3, 1, 0))


def _zip_with_pickle(path, payload):
    """A torch.save-shaped zip archive whose data.pkl is ``payload``."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", payload)
        archive.writestr("archive/version", "3\n")
    return path


class CallsSystem:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("layout", ["zip", "legacy"])
def test_a_pickle_that_calls_os_system_is_refused_with_nothing_run(tmp_path, layout, capsys):
    import kerasflow.convert_weights as convert_weights

    marker = tmp_path / "pwned"
    payload = pickle.dumps({"conv1.weight": CallsSystem(marker)}, protocol=2)
    path = tmp_path / "evil.pth"
    if layout == "zip":
        _zip_with_pickle(path, payload)
    else:
        path.write_bytes(payload)
    status, _, err = call(convert_weights, [str(path), str(tmp_path / "evil.weights.h5")], capsys)
    assert_one_error_line(status, err)
    assert err.strip().splitlines()[-1] == (
        f"error: {path}: refused: its pickle calls {os.system.__module__}.system, which a state dict of tensors "
        "never needs (kerasflow runs no code from weight files); save the state dict alone, or as .safetensors")
    assert not marker.exists() and sorted(os.listdir(tmp_path)) == ["evil.pth"]


def test_a_tensor_reaching_outside_its_storage_is_refused(tmp_path):
    # A pickle rebuilding a 1000-element tensor from a 4-element storage: reading it would read other memory.
    with zipfile.ZipFile(CHECKPOINT) as archive:
        prefix = archive.namelist()[0].split("/")[0]
        payload = archive.read(f"{prefix}/data.pkl")
    conv1 = read_torch_file(CHECKPOINT)["conv1.weight"]  # the first tensor, (4, 3, 7, 7), strides (147, 49, 7, 1)
    forged = payload.replace(b"K\x93K1K\x07K\x01", b"M\xe8\x03K1K\x07K\x01", 1)  # stride 147 -> 1000
    assert forged != payload and conv1.shape == (4, 3, 7, 7)
    path = tmp_path / "forged.pth"
    with zipfile.ZipFile(CHECKPOINT) as source, zipfile.ZipFile(path, "w") as target:
        for item in source.namelist():
            target.writestr(item, forged if item.endswith("data.pkl") else source.read(item))
    with pytest.raises(UserError,
                       match=re.escape(f"{path}: damaged (entry 'conv1.weight' is a tensor reaching element")):
        read_torch_file(path)


def test_a_pickle_that_alters_a_tensor_after_its_checks_is_refused(tmp_path):
    # {"w": _rebuild_tensor_v2(storage of 4 floats, 0, (4,), (1,), False, OrderedDict())}, then BUILD
    # {"stride": (10000,)} on the tensor: a stride its checks never saw.
    payload = (b"\x80\x02ccollections\nOrderedDict\n)R(X\x01\x00\x00\x00wctorch._utils\n_rebuild_tensor_v2\n("
               b"(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x04tQ"
               b"K\x00K\x04\x85K\x01\x85\x89ccollections\nOrderedDict\n)RtR}X\x06\x00\x00\x00strideM\x10'\x85sbu.")
    path = _zip_with_pickle(tmp_path / "altered.pth", payload)
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("archive/data/0", np.arange(4, dtype="<f4").tobytes())
    with pytest.raises(UserError, match=re.escape(f"{path}: not a readable PyTorch state dict (a pickle that alters "
                                                  "a TensorRef after building it)")):
        read_torch_file(path)
    unaltered = payload.replace(b"}X\x06\x00\x00\x00strideM\x10'\x85sb", b"")
    _zip_with_pickle(path, unaltered)
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("archive/data/0", np.arange(4, dtype="<f4").tobytes())
    np.testing.assert_array_equal(read_torch_file(path)["w"], [0, 1, 2, 3])


def test_not_a_state_dict_is_refused(tmp_path):
    path = _zip_with_pickle(tmp_path / "list.pth", pickle.dumps([1, 2], protocol=2))
    with pytest.raises(UserError, match=re.escape(f"{path}: holds a list, not a state dict of tensors; "
                                                  "save model.state_dict() alone")):
        read_torch_file(path)
    cut = tmp_path / "cut.pth"
    cut.write_bytes(DATA[:len(DATA) // 2])
    with pytest.raises(UserError,
                       match=re.escape(f"{cut}: damaged (File is not a zip file); download or save it again")):
        read_torch_file(cut)


# --- download, check, convert, cache ---

def test_first_use_downloads_checks_converts_and_caches_then_reads_only_the_cache(home, serve, capsys):
    server = serve({NAME: DATA})
    backbone = from_preset("resnet18", weights="imagenet", include_head=True, **SMALL)
    assert server.paths == [f"/models/{NAME}"]
    cached = home / "weights" / NAME.replace(".pth", ".weights.h5")
    assert cache_listing(home) == [cached.name, f"{cached.name}.json"]  # no .pth, no temporary left
    err = capsys.readouterr().err
    assert f"downloading {server.url}{NAME} to {home / 'weights'}" in err
    assert re.search(rf"{re.escape(NAME)}: 100%.*{len(DATA) / 1024:.1f}k/{len(DATA) / 1024:.1f}k \[.*B/s\]", err), err
    state = load_file(str(SAFETENSORS))
    np.testing.assert_array_equal(backbone.find_layer("layer4_1_conv1").kernel,
                                  state["layer4.1.conv1.weight"].transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(backbone.find_layer("fc").bias, state["fc.bias"])

    again = from_preset("resnet18", weights="imagenet", include_head=False, input_channels=2, **SMALL)
    assert server.paths == [f"/models/{NAME}"]  # the second use makes no request
    np.testing.assert_array_equal(again.find_layer("layer4_1_conv1").kernel,
                                  backbone.find_layer("layer4_1_conv1").kernel)
    server.close()
    assert imagenet.imagenet_weights("resnet18") == str(cached)  # with the server gone


def test_a_wrong_file_is_refused_and_nothing_is_cached(home, serve):
    server = serve({NAME: LEGACY.read_bytes()})
    digest = hashlib.sha256(LEGACY.read_bytes()).hexdigest()[:8]
    assert fetch_error() == (
        f"{server.url}{NAME} is damaged or not the expected file (its SHA-256 starts with {digest}, not "
        f"{NAME[9:17]}): nothing was cached; retry, or convert a local file with {CONVERT}")
    assert cache_listing(home) == []


def test_a_truncated_transfer_is_refused_and_nothing_is_cached(home, serve):
    server = serve({NAME: DATA}, truncate=50_000)
    assert fetch_error() == (
        f"{server.url}{NAME} is damaged or not the expected file (the transfer ended after 50,000 of "
        f"{len(DATA):,} bytes): nothing was cached; retry, or convert a local file with {CONVERT}")
    assert cache_listing(home) == []


def _offline_route(home):
    return (f"offline: download it elsewhere and put it in {home / 'weights' / NAME}, set KERASFLOW_WEIGHTS_URL "
            f"to a mirror (a URL or a folder), or convert a local file with {CONVERT} and give its path")


def test_http_404_names_the_url_the_status_and_the_offline_route(home, serve):
    server = serve({})
    assert fetch_error() == f"cannot download {server.url}{NAME} (HTTP 404 Not Found); {_offline_route(home)}"
    assert cache_listing(home) == []


def test_a_server_that_is_down_names_the_refused_connection(home, monkeypatch):
    with socket.socket() as probe:  # a port nobody listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("KERASFLOW_WEIGHTS_URL", f"http://127.0.0.1:{port}")
    assert fetch_error() == (f"cannot download http://127.0.0.1:{port}/{NAME} (connection refused by "
                             f"127.0.0.1:{port}); {_offline_route(home)}")


def test_a_server_that_does_not_answer_times_out(home, monkeypatch):
    monkeypatch.setattr(imagenet, "TIMEOUT_S", 0.5)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        monkeypatch.setenv("KERASFLOW_WEIGHTS_URL", f"http://127.0.0.1:{port}/")
        assert fetch_error() == (f"cannot download http://127.0.0.1:{port}/{NAME} (timeout: no answer from "
                                 f"127.0.0.1:{port} in 0.5 s); {_offline_route(home)}")


def test_a_transfer_that_stalls_times_out_and_caches_nothing(home, serve, monkeypatch):
    monkeypatch.setattr(imagenet, "TIMEOUT_S", 0.5)
    server = serve({NAME: DATA}, delay=3.0)  # the first 1 kB, then silence
    assert fetch_error() == (f"cannot download {server.url}{NAME} (timeout: no answer from {server.url[7:-8]} in "
                             f"0.5 s after 1,024 bytes); {_offline_route(home)}")
    assert cache_listing(home) == []


def test_reasons_name_dns_failures():
    error = urllib.error.URLError(socket.gaierror(-2, "Name or service not known"))
    assert imagenet.network_reason(error, "https://mirror.example/models/x.pth") == "DNS: cannot resolve mirror.example"


def test_a_preset_without_imagenet_weights_is_refused_in_one_line(home, tmp_path, capsys):
    with pytest.raises(UserError, match=r"^backbone preset 'tiny' has no ImageNet weights \(only resnet18, resnet34, "
                                        r"resnet50, resnet101 have\); set the weights to null"):
        from_preset("tiny", weights="imagenet")
    import kerasflow.fit_command as fit

    status, _, err = call(fit, [str(tiny_recipe(tmp_path)), "--set", "model.weights=imagenet"], capsys)
    assert_one_error_line(status, err, "model.weights = imagenet: backbone preset 'tiny' has no ImageNet weights; "
                                       "set model.weights to null (random initialisation) or to a converted "
                                       ".weights.h5 file")
    assert cache_listing(home) == []


def test_fit_stops_before_training_when_the_download_fails(home, serve, tmp_path, capsys):
    import kerasflow.fit_command as fit

    server = serve({})
    status, _, err = call(fit, [str(tiny_recipe(tmp_path)), "--set", "model.backbone=resnet18", "--set",
                                "model.weights=imagenet"], capsys)
    assert_one_error_line(status, err)
    assert err.strip().splitlines()[-1] == (
        f"error: model.weights: cannot download {server.url}{NAME} (HTTP 404 Not Found); {_offline_route(home)}")
    assert not (tmp_path / "run" / "stages").exists()


# --- mirrors and files put in the cache by hand ---

def test_a_mirror_folder_is_read_without_network(home, tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / NAME).write_bytes(DATA)
    monkeypatch.setenv("KERASFLOW_WEIGHTS_URL", str(mirror))
    path = imagenet.imagenet_weights("resnet18")
    assert cache_listing(home) == [Path(path).name, f"{Path(path).name}.json"]
    assert (mirror / NAME).read_bytes() == DATA


def test_a_mirror_folder_without_the_file_or_a_bad_variable_is_named(home, tmp_path, monkeypatch):
    monkeypatch.setenv("KERASFLOW_WEIGHTS_URL", str(tmp_path))
    assert fetch_error() == (f"{tmp_path / NAME}: no such file in the mirror folder KERASFLOW_WEIGHTS_URL names; "
                             f"put https://download.pytorch.org/models/{NAME} there, or unset KERASFLOW_WEIGHTS_URL")
    monkeypatch.setenv("KERASFLOW_WEIGHTS_URL", "ftp://mirror/models")
    assert fetch_error().startswith("KERASFLOW_WEIGHTS_URL=ftp://mirror/models is neither an http(s):// URL nor a "
                                    "folder")


def test_a_checkpoint_put_in_the_cache_is_used_and_a_damaged_one_named(home, serve):
    server = serve({})  # any request would get 404
    folder = home / "weights"
    folder.mkdir(parents=True)
    (folder / NAME).write_bytes(DATA[:-1] + bytes([DATA[-1] ^ 1]))
    assert fetch_error().startswith(f"{folder / NAME} is damaged or not the expected file (its SHA-256 starts with ")
    assert fetch_error().endswith(f"): delete {folder / NAME} and retry, or convert a local file with {CONVERT}")
    (folder / NAME).write_bytes(DATA)
    imagenet.imagenet_weights("resnet18")
    assert server.paths == [] and (folder / NAME.replace(".pth", ".weights.h5")).is_file()


def test_the_default_home_and_the_real_checkpoint_names(monkeypatch):
    monkeypatch.delenv("KERASFLOW_HOME", raising=False)
    monkeypatch.delenv("KERASFLOW_WEIGHTS_URL", raising=False)
    assert imagenet.weights_folder() == os.path.expanduser("~/.cache/kerasflow/weights")
    assert [imagenet.checkpoint_source(imagenet.checkpoint_name(name)) for name in ("resnet18", "resnet34", "resnet50",
                                                                                       "resnet101")] == [
        "https://download.pytorch.org/models/resnet18-f37072fd.pth",
        "https://download.pytorch.org/models/resnet34-b627a593.pth",
        "https://download.pytorch.org/models/resnet50-0676ba61.pth",
        "https://download.pytorch.org/models/resnet101-63fe2227.pth"]


# --- Ctrl-C ---

@pytest.mark.large
def test_ctrl_c_mid_download_leaves_nothing_in_the_cache(home, serve):
    server = serve({NAME: DATA}, delay=0.05)  # about 5 s for the whole file
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    script = "from kerasflow.backbones.imagenet import imagenet_weights; imagenet_weights('resnet18')"
    patch = f"from kerasflow.backbones.registry import PRESETS; PRESETS['resnet18']['imagenet_checkpoint'] = {NAME!r}; "
    # Ctrl-C's default action in the child even when this run inherited SIGINT ignored (a shell's background
    # job): Python installs its KeyboardInterrupt handler only where SIGINT is not ignored at start-up.
    process = subprocess.Popen([sys.executable, "-c", patch + script], env=env, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert server.sent.wait(60)
    time.sleep(0.5)
    partial = [name for name in cache_listing(home) if name.endswith(".tmp")]
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode != 0 and "KeyboardInterrupt" in err
    assert len(partial) == 1 and partial[0].startswith(f".{NAME}.")  # it was being written under a temporary name
    assert cache_listing(home) == []
