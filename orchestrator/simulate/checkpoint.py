"""Save a simulated world to a file and go on from it later (`meshbed simulate --checkpoint`).

A 100,000-peer run takes hours of CPU; a checkpoint lets it survive a stop (Ctrl-C, a
session that ends, a reboot) and go on where it was. A world resumed from a checkpoint
plays exactly as if it had never stopped: the same events in the same order, the same report
(tests/simulate/test_checkpoint.py).

The file is a pickle written *flat*: every object of meshbed's own classes is written on its
own, its references to others as numbers, instead of the default depth-first walk that
follows endpoint -> peer -> endpoint across the whole mesh (as deep as the mesh is large:
past the C stack at 100,000 peers, and past Python 3.12's fixed C recursion limit much
sooner). Loading runs code named in the file, as any pickle does: load only checkpoints you
wrote.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import io
import os
import pickle
import signal
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, BinaryIO, Optional

from orchestrator import __version__
from orchestrator.errors import InputError

if TYPE_CHECKING:
    from orchestrator.simulate.world import World

MAGIC = b"meshbed simulate checkpoint 1\n"
OWN_MODULES = ("orchestrator.", "peer.")  # instances of these modules' classes are written flat
DEFAULT_EVERY = 600.0  # wall seconds between two saves


def topology_digest(path: Path) -> str:
    """What a checkpoint must match to be resumed: the topology file's bytes, the version of
    meshbed and its code (another version's classes may not read its objects)."""
    h = hashlib.sha256(path.read_bytes())
    h.update(__version__.encode())
    h.update(code_digest())
    return h.hexdigest()


@functools.cache
def code_digest() -> bytes:
    """The sources of the packages whose objects a checkpoint holds: a meshbed edited or
    upgraded under the same version string (other fields, another clock) does not go on
    from a world its code cannot read."""
    h = hashlib.sha256()
    for package in ("orchestrator", "peer"):
        root = Path(importlib.import_module(package).__file__ or "").parent
        for source in sorted(root.rglob("*.py")):
            h.update(str(source.relative_to(root)).encode())
            h.update(source.read_bytes())
    return h.digest()


_OBJECT_GETSTATE = getattr(object, "__getstate__", None)  # Python >= 3.11


class _Unset:
    """Written for a slot that has no value (a singleton: pickled by name)."""

    def __reduce__(self) -> str:
        return "UNSET"


UNSET = _Unset()
Layout = Optional[tuple[bool, tuple[str, ...]]]


def layout_of(cls: type, own: tuple[str, ...], cache: dict[type, Layout]) -> Layout:
    """How an instance of ``cls`` is written flat: (has a __dict__, its slot names), or None
    when it is written the usual way (not of the ``own`` modules, or pickled by a rule of
    its own: tuples, enums, exceptions, containers)."""
    try:
        return cache[cls]
    except KeyError:
        pass
    layout: Layout = None
    if (cls.__module__.startswith(own) and not issubclass(cls, (tuple, list, dict, set, type, BaseException))
            and cls.__reduce_ex__ is object.__reduce_ex__ and cls.__reduce__ is object.__reduce__
            and getattr(cls, "__getnewargs__", None) is None and getattr(cls, "__getnewargs_ex__", None) is None):
        slots: list[str] = []
        for k in cls.__mro__:
            names = k.__dict__.get("__slots__", ())
            for name in (names,) if isinstance(names, str) else names:
                if name.startswith("__") and not name.endswith("__"):
                    name = f"_{k.__name__.lstrip('_')}{name}"  # private: stored mangled
                if name not in ("__dict__", "__weakref__") and name not in slots:
                    slots.append(name)
        layout = (cls.__dictoffset__ != 0, tuple(slots))
    cache[cls] = layout
    return layout


CLASS_BITS = 10  # a reference is number << CLASS_BITS | the class's index (classes in order of first use)


class FlatPickler(pickle.Pickler):
    """Writes the root, then each object's state in the order the objects were first named:
    its __dict__ (or what its __getstate__ gives), then its slots' values one by one. The
    objects a state names are written as references, an int each (a class's first object:
    (int, class)). No temporary container is made per object: pickle's memo would keep
    each one alive to the end (the memo alone adds half the world's size)."""

    def __init__(self, fh: BinaryIO, own: tuple[str, ...] = OWN_MODULES) -> None:
        super().__init__(fh, protocol=pickle.HIGHEST_PROTOCOL)
        self.own = own
        self.layouts: dict[type, Layout] = {}
        self.numbers: dict[int, int] = {}  # id(object) -> its reference
        self.objects: list[Any] = []  # by number (kept: their id()s are the keys above)
        self.classes: dict[type, int] = {}

    def persistent_id(self, obj: Any) -> Any:
        ref = self.numbers.get(id(obj))
        if ref is not None:
            return ref
        cls = type(obj)
        if layout_of(cls, self.own, self.layouts) is None:
            return None
        ci = self.classes.get(cls)
        new_class = ci is None
        if ci is None:
            ci = self.classes[cls] = len(self.classes)
            if ci >= 1 << CLASS_BITS:
                raise pickle.PicklingError("too many classes to write flat")
        ref = self.numbers[id(obj)] = len(self.objects) << CLASS_BITS | ci
        self.objects.append(obj)
        return (ref, cls) if new_class else ref

    def write_flat(self, root: Any) -> None:
        dump, objects = self.dump, self.objects
        dump(root)  # (persistent_id makes it object 0)
        i = 0
        while i < len(objects):  # a state names objects not seen yet: the list grows
            obj = objects[i]
            cls = type(obj)
            has_dict, slots = self.layouts[cls]  # type: ignore[misc]
            if has_dict:
                getstate = getattr(cls, "__getstate__", None)
                dump(obj.__dict__ if getstate is None or getstate is _OBJECT_GETSTATE else obj.__getstate__())
            for name in slots:
                dump(getattr(obj, name, UNSET))
            i += 1
        dump("end")


class FlatUnpickler(pickle.Unpickler):
    def __init__(self, fh: BinaryIO, own: tuple[str, ...] = OWN_MODULES) -> None:
        super().__init__(fh)
        self.own = own
        self.layouts: dict[type, Layout] = {}
        self.objects: list[Any] = []
        self.classes: list[type] = []

    def persistent_load(self, pid: Any) -> Any:
        if type(pid) is tuple:  # the first object of its class
            pid, cls = pid
            if pid & ((1 << CLASS_BITS) - 1) != len(self.classes) or layout_of(cls, self.own, self.layouts) is None:
                raise pickle.UnpicklingError(f"unexpected class {cls!r}")
            self.classes.append(cls)
        n = pid >> CLASS_BITS
        objects = self.objects
        if n < len(objects):
            return objects[n]
        if n != len(objects):  # numbered in order of first use
            raise pickle.UnpicklingError(f"object {n} named out of order")
        cls = self.classes[pid & ((1 << CLASS_BITS) - 1)]
        obj = cls.__new__(cls)  # its state comes later, in number order
        objects.append(obj)
        return obj

    def read_flat(self) -> Any:
        load, objects = self.load, self.objects
        root = load()
        setattr_ = object.__setattr__  # (frozen dataclasses too)
        # Pickle writes a number once per reference: one float that a thousand peers hold
        # (the time of one event) comes back as a thousand. Equal numbers share one object
        # again (a loaded 3,000-peer world was 21 % larger without this).
        floats: dict[float, float] = {}
        ints: dict[int, int] = {}

        def number(x: Any) -> Any:
            t = type(x)
            if t is float and x:  # (not 0.0: -0.0 == 0.0 would lose its sign)
                return floats.setdefault(x, x)
            if t is int:
                return ints.setdefault(x, x)
            return x

        def same(v: Any) -> Any:
            """``v`` with its numbers shared, and one level down: pieces -> times, timers
            [when, seq, ...]."""
            t = type(v)
            if t is dict:
                for k, x in v.items():
                    v[k] = number(x)
            elif t is list:
                for j, x in enumerate(v):
                    v[j] = number(x)
            else:
                return number(v)
            return v

        i = 0
        while i < len(objects):
            obj = objects[i]
            cls = type(obj)
            has_dict, slots = self.layouts[cls]  # type: ignore[misc]
            if has_dict:
                state = load()
                if type(state) is dict:
                    for k, v in state.items():
                        state[k] = same(v)
                setstate = getattr(cls, "__setstate__", None)
                if setstate is not None:
                    setstate(obj, state)
                else:
                    obj.__dict__.update(state)
            for name in slots:
                v = load()
                if v is not UNSET:
                    setattr_(obj, name, same(v))
            i += 1
        if load() != "end":
            raise pickle.UnpicklingError("missing end mark")
        return root


class Checkpoint:
    """Where and how often a running world is saved; ``stop_requested`` once the user asked
    to stop (SIGINT/SIGTERM while :meth:`catch_signals` is on): the world saves and stops at
    the next event boundary."""

    def __init__(self, path: Path, digest: str, every: float = DEFAULT_EVERY) -> None:
        self.path = path
        self.digest = digest
        self.every = every
        self.stop_requested = False
        self._last = time.monotonic()
        self._world: Optional[World] = None
        self._handlers: dict[int, Any] = {}  # the signal handlers catch_signals replaced

    def due(self) -> bool:
        return time.monotonic() - self._last >= self.every

    def catch_signals(self, world: World) -> None:
        """From now on SIGINT/SIGTERM stop the world at its next event and save it."""
        self._world = world
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._handlers[sig] = signal.signal(sig, self._on_signal)

    def release_signals(self) -> None:
        """Give SIGINT/SIGTERM back to the handlers they had before :meth:`catch_signals`."""
        for sig, handler in self._handlers.items():
            signal.signal(sig, handler)
        self._handlers.clear()
        self._world = None

    def _on_signal(self, signum: int, frame: Optional[FrameType]) -> None:
        self.stop_requested = True
        if self._world is not None:
            self._world.clock.stop()

    def save(self, world: World) -> int:
        """Write the world (atomically: a stop during the write leaves the last checkpoint
        whole); returns the file's size in bytes. OSError (disk full, ...) leaves no partial
        file behind."""
        tmp = self.path.with_name(self.path.name + ".part")
        try:
            with open(tmp, "wb", buffering=1 << 20) as fh:
                fh.write(MAGIC)
                meta = pickle.dumps({"digest": self.digest, "virtual": world.clock.now, "version": __version__})
                fh.write(len(meta).to_bytes(8, "big") + meta)
                FlatPickler(fh).write_flat(world)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            self._last = time.monotonic()  # (a failed periodic save is not retried at once)
            raise
        self._last = time.monotonic()
        return self.path.stat().st_size


def peek(path: Path) -> dict[str, Any]:
    """The checkpoint's header (digest, virtual seconds, version), or InputError."""
    try:
        with open(path, "rb") as fh:
            return _header(fh, path)
    except OSError as exc:
        raise InputError(f"cannot read the checkpoint: {exc.strerror}", path) from None


def _header(fh: BinaryIO, path: Path) -> dict[str, Any]:
    if fh.read(len(MAGIC)) != MAGIC:
        raise InputError("not a meshbed simulate checkpoint (delete it to start over)", path)
    try:
        size = int.from_bytes(fh.read(8), "big")
        meta: dict[str, Any] = pickle.loads(fh.read(size))
    except Exception:
        raise InputError("checkpoint is damaged (delete it to start over)", path) from None
    return meta


def load(path: Path, digest: str) -> World:
    """The world saved at ``path``; InputError when the file is not a checkpoint of this
    topology and meshbed version, or is damaged."""
    try:
        with open(path, "rb") as fh:
            meta = _header(fh, path)
            if meta.get("digest") != digest:
                raise InputError(
                    f"checkpoint of another topology or meshbed version (saved by {meta.get('version')}); "
                    "delete it to start over", path)
            try:
                world: World = FlatUnpickler(io.BufferedReader(fh, buffer_size=1 << 20)).read_flat()  # type: ignore[arg-type]
            except InputError:
                raise
            except Exception as exc:
                raise InputError(f"checkpoint is damaged ({type(exc).__name__}); delete it to start over",
                                 path) from None
    except OSError as exc:
        raise InputError(f"cannot read the checkpoint: {exc.strerror}", path) from None
    return world
