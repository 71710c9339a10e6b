"""Which modules a joblib model file needs: read from its pickle opcodes, without importing them.

A model must load in KServe's stock sklearn runtime, where only scikit-learn, numpy, pandas, scipy, joblib and
the standard library are installed. Every class or function a pickle needs is named by a ``GLOBAL`` opcode
(``module name``) or a ``STACK_GLOBAL`` opcode (module and name pushed as strings just before it), so the
opcodes tell which modules unpickling would import.

``joblib.dump`` interleaves raw array bytes with the pickle stream (after each ``NumpyArrayWrapper``), so the
file is not one plain pickle. To find those byte ranges the file is walked once with joblib's unpickler in
which every class outside numpy and joblib is replaced by an inert placeholder (nothing from scikit-learn,
pandas or any other module is imported or executed). The pickle opcodes outside the array payloads, and the
nested pickles of object arrays, are then read with ``pickletools.genops``.
"""

from __future__ import annotations

import io
import os
import pickle
import pickletools

_STRING_OPS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING", "BINSTRING", "STRING"}
_GET_OPS = {"GET", "BINGET", "LONG_BINGET"}
_PUT_OPS = {"PUT", "BINPUT", "LONG_BINPUT"}
#: Modules the walk must really import to read array payloads (dtypes, array reconstruction, joblib wrappers).
_REAL_MODULES = ("numpy", "joblib")


class _Inert:
    """Stands in for any class or function outside numpy/joblib while the file is walked: accepts everything."""

    def __new__(cls, *args, **kwargs):
        return object.__new__(cls)

    def __init__(self, *args, **kwargs):
        pass

    def __call__(self, *args, **kwargs):
        return _Inert()

    def __setstate__(self, state):
        pass

    def __setitem__(self, key, value):
        pass

    def append(self, item):
        pass

    def extend(self, items):
        pass

    def add(self, item):
        pass

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _Inert()


def _globals_in(data: bytes) -> set[tuple[str, str]]:
    """Return (module, name) of every GLOBAL / STACK_GLOBAL opcode in one plain pickle stream."""
    found: set[tuple[str, str]] = set()
    pushed: list = []  # recent values pushed, strings or None: STACK_GLOBAL takes the last two
    memo: dict = {}
    for opcode, arg, _pos in pickletools.genops(io.BytesIO(data)):
        name = opcode.name
        if name in ("GLOBAL", "INST"):
            module, _, qualname = arg.partition(" ")
            found.add((module, qualname))
            pushed.append(None)
        elif name == "STACK_GLOBAL":
            if len(pushed) < 2 or not isinstance(pushed[-2], str) or not isinstance(pushed[-1], str):
                raise ValueError("STACK_GLOBAL without a module and a name pushed as strings before it")
            found.add((pushed[-2], pushed[-1]))
            pushed.append(None)
        elif name in _STRING_OPS:
            pushed.append(arg.decode("utf-8", "replace") if isinstance(arg, bytes) else arg)
        elif name == "MEMOIZE":
            memo[len(memo)] = pushed[-1] if pushed else None
        elif name in _PUT_OPS:
            memo[arg] = pushed[-1] if pushed else None
        elif name in _GET_OPS:
            pushed.append(memo.get(arg))
        elif name not in ("FRAME", "PROTO"):
            pushed.append(None)
        del pushed[:-4]
    return found


def _walk_payloads(path: str) -> list[tuple[int, int, bool]]:
    """Walk a joblib file; return (start, end, is_object_array) of every array payload in it."""
    import numpy
    from joblib.numpy_pickle import NumpyUnpickler

    spans: list[tuple[int, int, bool]] = []

    class _Walker(NumpyUnpickler):
        dispatch = NumpyUnpickler.dispatch.copy()

        def find_class(self, module, name):
            if module.split(".")[0] in _REAL_MODULES:
                return super().find_class(module, name)
            return _Inert

        def load_build(self):
            start = self.file_handle.tell()
            NumpyUnpickler.load_build(self)
            end = self.file_handle.tell()
            if end != start:
                top = self.stack[-1]
                spans.append((start, end, isinstance(top, numpy.ndarray) and bool(top.dtype.hasobject)))

        dispatch[pickle.BUILD[0]] = load_build

    with open(path, "rb") as handle:
        _Walker(os.fspath(path), handle, ensure_native_byte_order=False).load()
    return spans


def pickled_globals(path: str | os.PathLike) -> set[tuple[str, str]]:
    """Return every (module, qualified name) a joblib (or plain pickle) file references.

    Args:
        path: A file written by ``joblib.dump`` (uncompressed) or ``pickle.dump``.

    Returns:
        The set of ``(module, name)`` pairs named by GLOBAL and STACK_GLOBAL opcodes, including those in the
        nested pickles of object arrays.
    """
    path = os.fspath(path)
    with open(path, "rb") as handle:
        data = handle.read()
    spans = _walk_payloads(path)
    found: set[tuple[str, str]] = set()
    stream = bytearray()
    position = 0
    for start, end, is_object in spans:
        stream += data[position:start]
        if is_object:
            found |= _globals_in(data[start:end])
        position = end
    stream += data[position:]
    found |= _globals_in(bytes(stream))
    return found


def pickled_modules(path: str | os.PathLike) -> set[str]:
    """Return the top-level modules (``sklearn``, ``numpy``, ...) that loading a joblib file would import."""
    return {module.split(".")[0] for module, _name in pickled_globals(path)}
