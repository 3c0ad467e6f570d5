"""ImageNet weights by name: ``model.weights: imagenet`` and ``from_preset(name, weights="imagenet")``.

The first use of a preset's ImageNet weights fetches torchvision's IMAGENET1K_V1 checkpoint of it
(the presets' ``imagenet_checkpoint``, from ``TORCHVISION_URL`` or the mirror ``$KERASFLOW_WEIGHTS_URL`` names: an
``http(s)://`` base URL or a local folder holding the same file names), checks that its SHA-256 starts
with the 8 hex digits in its name (as ``torch.hub`` does), converts it once and caches the result as
``$KERASFLOW_HOME/weights/<file name>.weights.h5`` (plus its ``.json`` architecture sidecar).
``KERASFLOW_HOME`` defaults to ``~/.cache/kerasflow``. Every later use reads the cache and never
touches the network. A checkpoint put in the cache folder under its own name (downloaded elsewhere) is
checked and converted the same way, with no download.

The download goes to a temporary name that is renamed only once the whole file is there and its hash
is right, so an interruption (Ctrl-C) or a failure leaves nothing in the cache; running again
starts the download again. The downloaded checkpoint is deleted once converted (one interrupted during
the conversion stays, complete, and the next use converts it without downloading it again).
"""

import hashlib
import http.client
import os
import re
import socket
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

from tqdm import tqdm

from kerasflow.atomic import atomic_path, ensure_writable_folder
from kerasflow.backbones.registry import PRESETS, converter, imagenet_checkpoint
from kerasflow.backbones.weights import config_path
from kerasflow.errors import UserError

TORCHVISION_URL = "https://download.pytorch.org/models/"
HOME_VARIABLE = "KERASFLOW_HOME"
MIRROR_VARIABLE = "KERASFLOW_WEIGHTS_URL"
TIMEOUT_S = 30.0  # seconds without an answer before a download gives up
CHUNK_BYTES = 1 << 16
_HASH_PREFIX = re.compile(r"-([a-f0-9]{8,})\.")
CONVERT_COMMAND = "python -m kerasflow.convert_weights"


def kerasflow_home():
    """``$KERASFLOW_HOME``, else ``~/.cache/kerasflow`` (absolute)."""
    return os.path.abspath(os.path.expanduser(os.environ.get(HOME_VARIABLE) or "~/.cache/kerasflow"))


def weights_folder():
    """The cache of ImageNet weights: ``$KERASFLOW_HOME/weights``."""
    return os.path.join(kerasflow_home(), "weights")


def checkpoint_name(preset):
    """torchvision's file name of ``preset``'s ImageNet weights; ``UserError`` for a preset that has none."""
    name = imagenet_checkpoint(preset)
    if name is None:
        having = ", ".join(other for other in PRESETS if PRESETS[other]["imagenet_checkpoint"])
        raise UserError(f"backbone preset {preset!r} has no ImageNet weights (only {having} have); set the "
                        "weights to null (random initialisation) or to a converted .weights.h5 file")
    return name


def cached_weights_path(preset):
    """Where the converted weights of ``preset`` are cached (whether they are there or not)."""
    return os.path.join(weights_folder(), checkpoint_name(preset).rsplit(".", 1)[0] + ".weights.h5")


def imagenet_weights(preset):
    """The path of ``preset``'s converted ImageNet weights, fetched, checked and converted on first use.

    Example (a cache hit reads no network): ``load_imagenet_weights(backbone, imagenet_weights("resnet34"))``.
    """
    out_path = cached_weights_path(preset)
    if os.path.isfile(out_path) and os.path.isfile(config_path(out_path)):
        return out_path
    name = checkpoint_name(preset)
    ensure_writable_folder(weights_folder())
    placed = os.path.join(weights_folder(), name)
    source = placed if os.path.isfile(placed) else checkpoint_source(name)
    downloaded = source.startswith(("http://", "https://"))
    if downloaded:
        download(source, placed)
    else:
        check_file(source, name)
    _convert(preset, placed if downloaded else source, out_path)
    if downloaded:  # the converted file is what is used; a checkpoint the user put here stays
        os.remove(placed)
    return out_path


def checkpoint_source(name):
    """The URL or mirror file of checkpoint ``name``: ``$KERASFLOW_WEIGHTS_URL`` (a base URL or a folder)
    in place of ``TORCHVISION_URL``."""
    mirror = os.environ.get(MIRROR_VARIABLE, "").strip()
    if not mirror:
        return TORCHVISION_URL + name
    if mirror.startswith(("http://", "https://")):
        return mirror.rstrip("/") + "/" + name
    folder = os.path.abspath(os.path.expanduser(mirror))
    if not os.path.isdir(folder):
        raise UserError(f"{MIRROR_VARIABLE}={mirror} is neither an http(s):// URL nor a folder; set it to a "
                        f"mirror of {TORCHVISION_URL} (a base URL or a folder holding {name}) or unset it")
    path = os.path.join(folder, name)
    if not os.path.isfile(path):
        raise UserError(f"{path}: no such file in the mirror folder {MIRROR_VARIABLE} names; put "
                        f"{TORCHVISION_URL}{name} there, or unset {MIRROR_VARIABLE}")
    return path


def expected_hash_prefix(name):
    """The hex digits after the last ``-`` of ``name`` (``resnet34-b627a593.pth`` -> ``b627a593``)."""
    return _HASH_PREFIX.findall(name)[-1]


def _offline_route(name):
    return (f"download it elsewhere and put it in {os.path.join(weights_folder(), name)}, set {MIRROR_VARIABLE} "
            f"to a mirror (a URL or a folder), or convert a local file with {CONVERT_COMMAND} and give its path")


def _damaged(what, why, delete=None):
    remedy = f"delete {delete} and retry" if delete else "nothing was cached; retry"
    return UserError(f"{what} is damaged or not the expected file ({why}): {remedy}, or convert a local file "
                     f"with {CONVERT_COMMAND}")


def check_file(path, name):
    """Raise the one-line ``UserError`` if ``path``'s SHA-256 does not start as ``name`` says."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    expected = expected_hash_prefix(name)
    if not digest.hexdigest().startswith(expected):
        raise _damaged(path, f"its SHA-256 starts with {digest.hexdigest()[:len(expected)]}, not {expected}",
                       delete=path)


def network_reason(error, url):
    """Why the request for ``url`` failed, in words: DNS, refused, timeout, HTTP status..."""
    host = urllib.parse.urlsplit(url).netloc
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}"
    reason = error.reason if isinstance(error, urllib.error.URLError) else error
    if isinstance(reason, socket.gaierror):
        return f"DNS: cannot resolve {urllib.parse.urlsplit(url).hostname}"
    if isinstance(reason, ConnectionRefusedError):
        return f"connection refused by {host}"
    if isinstance(reason, (TimeoutError, socket.timeout)):
        return f"timeout: no answer from {host} in {TIMEOUT_S:g} s"
    if isinstance(reason, ssl.SSLError):
        return f"TLS: {reason.reason or reason}"
    if isinstance(reason, http.client.HTTPException):
        return f"{host} broke off the connection ({type(reason).__name__})"
    if isinstance(reason, OSError) and reason.strerror:
        return f"{reason.strerror.lower()} ({host})"
    return " ".join(str(reason).split()) or type(reason).__name__


def download(url, path):
    """Download ``url`` to ``path`` with a progress bar (size, speed), checking its SHA-256 prefix; the file
    appears at ``path`` only when complete and right."""
    name = os.path.basename(path)
    expected = expected_hash_prefix(name)
    try:
        response = urllib.request.urlopen(url, timeout=TIMEOUT_S)
    except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
        raise UserError(f"cannot download {url} ({network_reason(error, url)}); offline: "
                        f"{_offline_route(name)}") from None
    total = response.length
    print(f"downloading {url} to {weights_folder()}", file=sys.stderr, flush=True)
    digest, received = hashlib.sha256(), 0
    with response, atomic_path(path, needed_bytes=total) as temporary, open(temporary, "wb") as file, tqdm(
            total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=name, miniters=1) as progress:
        while chunk := _read_chunk(response, url, received):
            file.write(chunk)  # a full disk is atomic_path's one line
            digest.update(chunk)
            received += len(chunk)
            progress.update(len(chunk))
        if total is not None and received != total:
            raise _damaged(url, f"the transfer ended after {received:,} of {total:,} bytes")
        if not digest.hexdigest().startswith(expected):
            raise _damaged(url, f"its SHA-256 starts with {digest.hexdigest()[:len(expected)]}, not {expected}")


def _read_chunk(response, url, received):
    """The next bytes of ``response`` (empty at its end, or where the server cut it short)."""
    try:
        return response.read1(CHUNK_BYTES)
    except http.client.IncompleteRead:  # a chunked transfer cut short: the size or hash check names it
        return b""
    except (OSError, http.client.HTTPException) as error:
        name = urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1]
        raise UserError(f"cannot download {url} ({network_reason(error, url)} after {received:,} bytes); "
                        f"offline: {_offline_route(name)}") from None


def _convert(preset, pth_path, out_path):
    """Convert the checkpoint with the converter of ``preset``'s family (imports Keras)."""
    started = time.monotonic()
    converter(preset)(pth_path, out_path)
    print(f"converted {os.path.basename(pth_path)} into {out_path} in {time.monotonic() - started:.1f} s",
          file=sys.stderr, flush=True)
