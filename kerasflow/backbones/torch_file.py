"""Read the tensors of a PyTorch ``.pth`` state dict as NumPy arrays, without PyTorch and without running
the file's pickled code.

``torch.save`` writes a zip archive (since PyTorch 1.6): ``<name>/data.pkl``, a pickle of the state dict
whose tensors refer to their raw storages by a persistent id ``("storage", storage type, key, location,
numel)``, and one file ``<name>/data/<key>`` per storage (``<name>/byteorder`` says little or big
endian). Older PyTorch wrote the legacy format: four pickles one after another (a magic number, the
protocol version 1001, system information, the state dict) then the list of storage keys, and each
storage's element count (int64) followed by its bytes.

A pickle can call any function it names. As ``torch.load(weights_only=True)``, the unpickler here
accepts only the names a state dict of tensors needs (``ALLOWED_GLOBALS``: ``OrderedDict``, the tensor
rebuild functions, the storage types) and refuses any other in one line, before anything is called.
The rebuild functions are this module's own, which build NumPy arrays and check every offset and
stride against the storage's size, so a crafted file cannot read outside the data it holds.
"""

import collections
import io
import pickle
import zipfile

import numpy as np

from kerasflow.errors import UserError

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
RESAVE = ("load it with PyTorch and re-save it: torch.save(torch.load(path, weights_only=True), path); "
          "or convert its state dict with safetensors.torch.save_file")


class _Sealed:
    """What the unpickler makes for the pickle: a pickle's BUILD cannot change it after the checks."""

    __slots__ = ()

    def __setstate__(self, state):
        raise ValueError(f"a pickle that alters a {type(self).__name__} after building it")


class StorageType(_Sealed):
    """A PyTorch storage class (``torch.FloatStorage``...): the NumPy dtype of its elements."""

    __slots__ = ("name", "dtype")

    def __init__(self, name, dtype):
        self.name, self.dtype = name, np.dtype(dtype)

    def __repr__(self):
        return f"torch.{self.name}"


# torch.<name>Storage -> NumPy dtype; bfloat16 is read as its 16 bits and widened to float32 (below).
_STORAGE_DTYPES = {
    "DoubleStorage": "<f8", "FloatStorage": "<f4", "HalfStorage": "<f2", "BFloat16Storage": "<u2",
    "LongStorage": "<i8", "IntStorage": "<i4", "ShortStorage": "<i2", "CharStorage": "i1",
    "ByteStorage": "u1", "BoolStorage": "?", "UntypedStorage": "u1",
}
STORAGE_TYPES = {("torch", name): StorageType(name, dtype) for name, dtype in _STORAGE_DTYPES.items()}


class Storage(_Sealed):
    """The elements of one storage, as a 1-D NumPy array."""

    __slots__ = ("storage_type", "values")

    def __init__(self, storage_type, values):
        self.storage_type, self.values = storage_type, values


class TorchFileError(UserError):
    """A ``.pth`` file that cannot be read (the message names the file)."""


class TensorRef(_Sealed):
    """A tensor as the pickle describes it: ``size`` and ``stride`` (in elements) from ``storage_offset`` of
    ``storage``. The legacy format stores the bytes after the pickle, so arrays are made at the end."""

    __slots__ = ("storage", "storage_offset", "size", "stride")

    def __init__(self, storage, storage_offset, size, stride):
        self.storage, self.storage_offset, self.size, self.stride = storage, storage_offset, size, stride

    def to_array(self):
        """The tensor as a new NumPy array; ``ValueError`` if it reaches outside its storage."""
        values, offset, size, stride = self.storage.values, self.storage_offset, self.size, self.stride
        if 0 in size:
            return np.zeros(size, values.dtype)
        last = offset + sum((extent - 1) * step for extent, step in zip(size, stride))
        if last >= values.size:
            raise ValueError(f"a tensor reaching element {last} of a storage of {values.size}")
        tensor = np.array(np.lib.stride_tricks.as_strided(
            values[offset:], shape=size, strides=tuple(step * values.itemsize for step in stride), writeable=False))
        if self.storage.storage_type.name == "BFloat16Storage":
            tensor = (tensor.astype(np.uint32) << 16).view(np.float32)
        return tensor


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                       metadata=None):
    """``torch._utils._rebuild_tensor_v2``, as a ``TensorRef`` whose numbers are checked."""
    numbers = (storage_offset, *size, *stride)
    if (not isinstance(storage, Storage) or len(size) != len(stride)
            or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in numbers)):
        raise ValueError(f"a tensor with size {size}, stride {stride} and offset {storage_offset}")
    return TensorRef(storage, storage_offset, tuple(size), tuple(stride))


def _rebuild_parameter(data, requires_grad, backward_hooks, *state):
    """``torch._utils._rebuild_parameter``: an ``nn.Parameter`` is its tensor."""
    return data


ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    **STORAGE_TYPES,
}


class RefusedGlobal(Exception):
    """The pickle names a global that a state dict of tensors does not need."""


class _StateDictUnpickler(pickle.Unpickler):
    """Unpickles a state dict of tensors: ``ALLOWED_GLOBALS`` only; storages come from ``load_storage``."""

    def __init__(self, file, load_storage):
        super().__init__(file)
        self.load_storage = load_storage
        self.storages = {}

    def find_class(self, module, name):
        try:
            return ALLOWED_GLOBALS[module, name]
        except KeyError:
            raise RefusedGlobal(f"{module}.{name}") from None

    def persistent_load(self, saved_id):
        if not (isinstance(saved_id, tuple) and saved_id and saved_id[0] == "storage"
                and len(saved_id) >= 5 and isinstance(saved_id[1], StorageType)):
            raise ValueError(f"an unknown persistent id {str(saved_id)[:60]}")
        storage_type, key, numel = saved_id[1], str(saved_id[2]), saved_id[4]
        if len(saved_id) > 5 and saved_id[5] is not None:
            raise ValueError("a storage view (written by PyTorch before 0.4)")
        if key not in self.storages:
            self.storages[key] = Storage(storage_type, self.load_storage(key, storage_type, numel))
        return self.storages[key]


def _unpickle(path, data, load_storage):
    """The object pickled in ``data`` (bytes or a file), refusing globals outside ``ALLOWED_GLOBALS``."""
    file = io.BytesIO(data) if isinstance(data, bytes) else data
    unpickler = _StateDictUnpickler(file, load_storage)
    try:
        return unpickler.load(), unpickler
    except RefusedGlobal as error:
        raise TorchFileError(
            f"{path}: refused: its pickle calls {error}, which a state dict of tensors never needs (kerasflow "
            "runs no code from weight files); save the state dict alone, or as .safetensors"
        ) from None
    except (pickle.UnpicklingError, ValueError, TypeError, EOFError, AttributeError, IndexError,
            KeyError, OverflowError, MemoryError) as error:
        reason = " ".join(str(error).split()) or type(error).__name__
        raise TorchFileError(f"{path}: not a readable PyTorch state dict ({reason}); {RESAVE}") from None


def _zip_storage_reader(archive, prefix, big_endian):
    def load_storage(key, storage_type, numel):
        dtype = storage_type.dtype.newbyteorder(">" if big_endian else "<")
        values = np.frombuffer(archive.read(f"{prefix}data/{key}"), dtype=dtype).astype(storage_type.dtype)
        if storage_type.name != "UntypedStorage" and values.size != numel:
            raise ValueError(f"storage {key} holds {values.size} elements, its header says {numel}")
        return values
    return load_storage


def _read_zip(path, archive):
    """``(state, unpickler)`` of a ``torch.save`` zip archive."""
    names = archive.namelist()
    pickles = [name for name in names if name.endswith("/data.pkl") and name.count("/") == 1]
    if len(pickles) != 1:
        raise TorchFileError(f"{path}: a zip file, but not one torch.save writes (no <name>/data.pkl); {RESAVE}")
    prefix = pickles[0][:-len("data.pkl")]
    byteorder = archive.read(f"{prefix}byteorder").decode().strip() if f"{prefix}byteorder" in names else "little"
    try:
        return _unpickle(path, archive.read(pickles[0]), _zip_storage_reader(archive, prefix, byteorder == "big"))
    except zipfile.BadZipFile as error:  # a member whose CRC does not match
        raise TorchFileError(f"{path}: damaged ({error}); download or save it again") from None


def _read_legacy(path, file):
    """``(state, unpickler)`` of the legacy format (see the module docstring)."""
    def empty_storage(key, storage_type, numel):
        return np.empty(0, storage_type.dtype)  # filled below, from the bytes after the pickles

    header = [_unpickle(path, file, empty_storage)[0] for _ in range(3)]
    if header[0] != LEGACY_MAGIC or header[1] != LEGACY_PROTOCOL or not isinstance(header[2], dict):
        raise TorchFileError(f"{path}: a pickle, but not a torch.save file (no torch.save header); {RESAVE}")
    byteorder = "<" if header[2].get("little_endian", True) else ">"
    state, unpickler = _unpickle(path, file, empty_storage)
    keys, _ = _unpickle(path, file, empty_storage)
    if not isinstance(keys, list) or set(map(str, keys)) != set(unpickler.storages):
        raise TorchFileError(f"{path}: damaged (its list of storages does not match its tensors); {RESAVE}")
    for key in map(str, keys):
        storage = unpickler.storages[key]
        dtype = storage.storage_type.dtype.newbyteorder(byteorder)
        count = np.frombuffer(file.read(8), dtype=f"{byteorder}i8")
        raw = file.read(int(count[0]) * dtype.itemsize) if count.size == 1 and count[0] >= 0 else b""
        if count.size != 1 or len(raw) != int(count[0]) * dtype.itemsize:
            raise TorchFileError(f"{path}: damaged (it ends inside storage {key}); download or save it again")
        storage.values = np.frombuffer(raw, dtype=dtype).astype(storage.storage_type.dtype)
    return state, unpickler


def is_torch_file(path):
    """Whether ``path`` starts as a ``torch.save`` file does (a zip archive, or a pickle) and not as a
    safetensors file (an 8-byte header length, then ``{``)."""
    with open(path, "rb") as file:
        start = file.read(9)
    return start.startswith(b"PK\x03\x04") or (start[:1] == b"\x80" and start[8:9] != b"{")


def read_torch_file(path):
    """The tensors of the state dict ``torch.save`` wrote to ``path``, ``{key: NumPy array}`` (bfloat16 as
    float32), read without PyTorch and without running code from the file. A file that is not a flat
    state dict of tensors, or whose pickle names anything else, is a one-line ``TorchFileError``."""
    path = str(path)
    try:
        with open(path, "rb") as file:
            zipped = file.read(4) == b"PK\x03\x04"
        if zipped:
            with zipfile.ZipFile(path) as archive:
                state, _ = _read_zip(path, archive)
        else:
            with open(path, "rb") as file:
                state, _ = _read_legacy(path, file)
    except (zipfile.BadZipFile, OSError) as error:
        reason = " ".join(str(error).split()) or type(error).__name__
        raise TorchFileError(f"{path}: damaged ({reason}); download or save it again") from None
    if not isinstance(state, dict) or not state:
        raise TorchFileError(f"{path}: holds a {type(state).__name__}, not a state dict of tensors; "
                             "save model.state_dict() alone")
    arrays = {}
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, TensorRef):
            raise TorchFileError(f"{path}: entry {str(key)[:40]!r} is a {type(value).__name__}, not a tensor; "
                                 "save model.state_dict() alone")
        try:
            arrays[key] = value.to_array()
        except ValueError as error:
            raise TorchFileError(f"{path}: damaged (entry {key!r} is {error}); download or save it again") from None
    return arrays
