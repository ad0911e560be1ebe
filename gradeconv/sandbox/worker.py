"""The worker: the only gradeconv code that runs inside the student's process.

It imports the student's module, calls the functions the parent asks for and
sends back what they returned. It judges nothing: the parent compares, scores
and decides. Only the standard library, numpy and ``wire`` are used here, and
everything this file needs from them is bound before student code is imported,
so a submission that patches numpy or the standard library hurts only itself.
"""
import dis
import importlib
import importlib.machinery
import io
import json
import os
import re
import resource
import sys
import time
import traceback
import types

OPEN_FILES = 256


def apply_limits(config):
    """Memory, file size, open file and core-dump limits, soft and hard, before any student code runs."""
    memory = config.get("memory_bytes")
    if memory:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    file_bytes = config.get("file_bytes")
    if file_bytes:
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_bytes, file_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NOFILE, (OPEN_FILES, OPEN_FILES))


class StandInUsed(ImportError):
    """Student code used a stand-in for real: the parent maps the subclass's name to the outcome."""


class UnavailableModuleUsed(StandInUsed):
    """A module the grader does not provide (matplotlib, IPython, ...) was used, not just imported."""


class ForbiddenModuleUsed(StandInUsed):
    """A module the rubric forbids (torch, ...) was used, not just imported."""


_IMPORT_FROM = dis.opmap["IMPORT_FROM"]
_getframe = sys._getframe


class StandIn(types.ModuleType):
    """What student code gets instead of a module it may not or cannot have.

    Importing it works (`import matplotlib.pyplot as plt`, `from torch import nn`: submodules and
    names taken by `from ... import` are stand-ins too), so an unused editor auto-import costs
    nothing; the first real use (an attribute, a call, indexing, iterating, subclassing) raises,
    and only the function doing it fails. It never holds anything of the real module.
    """

    def __init__(self, name, missing, error):
        super().__init__(name)
        self.__dict__["_stand_in"] = (missing, error)

    def _used(self, what):
        missing, error = self.__dict__["_stand_in"]
        kind = "forbidden by this assignment" if error is ForbiddenModuleUsed else "not provided by the grader"
        return error(f"{what} uses {missing}, which is {kind} (imported here as a stand-in)", name=missing)

    def __getattr__(self, name):
        if name.startswith("__") and name.endswith("__"):  # import machinery, hasattr(m, "__all__"), ...
            raise AttributeError(f"stand-in module {self.__name__!r} has no attribute {name!r}")
        if _importing(_getframe(1)):  # from X import name: hand out a stand-in for it
            missing, error = self.__dict__["_stand_in"]
            return StandIn(f"{self.__name__}.{name}", missing, error)
        raise self._used(f"{self.__name__}.{name}")

    def __call__(self, *args, **kwargs):
        raise self._used(f"calling {self.__name__}")

    def __getitem__(self, key):
        raise self._used(f"indexing {self.__name__}")

    def __iter__(self):
        raise self._used(f"iterating over {self.__name__}")

    def __mro_entries__(self, bases):
        raise self._used(f"subclassing {self.__name__}")

    def __repr__(self):
        return f"<stand-in for {self.__name__!r}>"


def _importing(frame):
    """Whether the attribute lookup made in `frame` is part of an import (`from X import name`)."""
    if frame is None:
        return False
    code = frame.f_code
    if code.co_filename.startswith("<frozen importlib"):  # _handle_fromlist's hasattr
        return True
    try:
        return code.co_code[frame.f_lasti] == _IMPORT_FROM
    except (IndexError, TypeError):
        return False


class StandInLoader:
    """Creates a stand-in module; runs nothing."""

    def __init__(self, missing, error):
        self.missing, self.error = missing, error

    def create_module(self, spec):
        return StandIn(spec.name, self.missing, self.error)

    def exec_module(self, module):
        pass


class _StudentImports:
    """Tells whether an import was asked for by code of the submission (not numpy, not the worker)."""

    def __init__(self, package_dir):
        self.package_dir = package_dir
        self.machinery = frozenset({__file__, getattr(importlib, "__file__", None)})

    def from_student(self):
        frame = _getframe(1)
        while frame is not None:
            filename = frame.f_code.co_filename
            if not (filename.startswith("<frozen importlib") or filename in self.machinery):
                return filename.startswith(self.package_dir)
            frame = frame.f_back
        return False

    def stand_in(self, name, missing, error):
        return importlib.machinery.ModuleSpec(name, StandInLoader(missing, error), is_package=True)


class ForbiddenImports(_StudentImports):
    """A meta path finder (first in line) that never lets the modules the rubric forbids load.

    An import of one by the submission gets a stand-in that fails on first use (`forbidden`);
    anyone else's gets ImportError, as code that tries optional packages expects.
    """

    def __init__(self, roots, package_dir):
        super().__init__(package_dir)
        self.roots = frozenset(roots)

    def find_spec(self, name, path=None, target=None):
        root = name.partition(".")[0]
        if root in self.roots:
            if self.from_student():
                return self.stand_in(name, root, ForbiddenModuleUsed)
            raise ImportError(f"import of {name!r} is forbidden by the rubric", name=name)
        return None


class MissingModules(_StudentImports):
    """A meta path finder (last in line): a module nothing else found, imported by the submission,
    becomes a stand-in that fails on first use (`error: uses matplotlib, which the grader does not provide`)."""

    def __init__(self, roots, package_dir):
        super().__init__(package_dir)
        self.roots = frozenset(roots)

    def find_spec(self, name, path=None, target=None):
        if not self.from_student():
            return None
        root = name.partition(".")[0]
        if root in self.roots:
            return self.stand_in(name, root, ForbiddenModuleUsed)
        parent = sys.modules.get(name.rpartition(".")[0])
        if type(parent) is StandIn:  # matplotlib.pyplot: what is missing is matplotlib
            missing, error = parent.__dict__["_stand_in"]
            return self.stand_in(name, missing, error)
        return self.stand_in(name, name, UnavailableModuleUsed)


class CappedLog:
    """One of the worker's log files (fd 1 or 2), kept as head + marker + tail: output never fails.

    The first `head` bytes are written as they come; after that only the last `tail` bytes are
    kept (in memory) and written behind a marker saying how many bytes were cut, rewritten in
    place (ftruncate, then append: the parent opened the log in append mode) at most every
    FLUSH_SECONDS or FLUSH_BYTES while output keeps coming, after every call and at exit.
    So this worker adds at most head + marker + tail bytes to the file, a 50 MB print costs
    only time, and no error of the file (RLIMIT_FSIZE, a full disk) reaches the student's code.
    """

    FLUSH_SECONDS = 0.25
    FLUSH_BYTES = 1 << 20

    def __init__(self, fd, head, tail):
        self.fd, self.head, self.tail_size = fd, head, tail
        self._write, self._truncate, self._fstat, self._now = os.write, os.ftruncate, os.fstat, time.monotonic
        self.written = 0  # head bytes written
        self.tail_at = None  # file offset where the marker and the tail go, once the head is full
        self.tail = bytearray()
        self.beyond = 0  # bytes after the head: the tail plus the bytes cut
        self.dirty, self.unflushed, self.flushed_at = False, 0, 0.0

    def write(self, data):
        data = memoryview(data).cast("B")  # a str or other non-buffer raises TypeError, as on a real file
        size = len(data)
        try:
            room = self.head - self.written
            if room > 0:
                self._write_all(data[:room])
                self.written += min(room, size)
                data = data[room:]
                if self.written >= self.head:
                    self.tail_at = self._fstat(self.fd).st_size
            if len(data):
                self.beyond += len(data)
                if len(data) >= self.tail_size:
                    self.tail = bytearray(data[len(data) - self.tail_size:])
                else:
                    self.tail += data
                    del self.tail[:-self.tail_size]
                self.dirty = True
                self.unflushed += len(data)
                if self.unflushed >= self.FLUSH_BYTES or self._now() - self.flushed_at >= self.FLUSH_SECONDS:
                    self.flush()
            return size
        except Exception:  # output must never fail the student's code: what cannot be written is dropped
            return size

    def flush(self):
        if not self.dirty or self.tail_at is None:
            return
        self.dirty, self.unflushed, self.flushed_at = False, 0, self._now()
        cut = self.beyond - len(self.tail)
        marker = f"\n[... {cut} bytes cut ...]\n".encode() if cut else b""
        try:
            self._truncate(self.fd, self.tail_at)
            self._write_all(memoryview(marker + bytes(self.tail)))
        except Exception:
            pass

    def _write_all(self, view):
        while len(view):
            view = view[self._write(self.fd, view):]


class CappedRaw(io.RawIOBase):
    """sys.stdout.buffer / sys.stderr.buffer: a raw stream over a CappedLog."""

    def __init__(self, log):
        super().__init__()
        self.log = log

    def writable(self):
        return True

    def write(self, data):
        return self.log.write(data)

    def fileno(self):
        return self.log.fd

    def isatty(self):
        return False


def cap_output(head, tail):
    """Route print, sys.stdout/stderr (and their buffers) and os.write to fds 1 and 2 through CappedLogs."""
    logs = {fd: CappedLog(fd, head, tail) for fd in (1, 2)}
    streams = []
    for fd in (1, 2):
        stream = io.TextIOWrapper(CappedRaw(logs[fd]), encoding="utf-8", errors="backslashreplace",
                                  write_through=True)
        streams.append(stream)
    sys.stdout, sys.stderr = streams
    sys.__stdout__, sys.__stderr__ = streams
    real_write = os.write

    def write(fd, data):
        log = logs.get(fd)
        return real_write(fd, data) if log is None else log.write(data)

    os.write = write  # the worker's own Channel bound the real one before this
    return list(logs.values())


class Channel:
    """Blocking message I/O over the two pipe ends the parent handed over."""

    def __init__(self, read_fd, write_fd, wire):
        self.read_fd, self.write_fd, self.wire = read_fd, write_fd, wire
        self._read, self._write = os.read, os.write

    def _read_exactly(self, size):
        chunks = []
        while size:
            chunk = self._read(self.read_fd, min(size, 1 << 20))
            if not chunk:
                raise EOFError
            chunks.append(chunk)
            size -= len(chunk)
        return b"".join(chunks)

    def receive(self):
        return self.wire.receive(self._read_exactly)

    def send(self, header, arrays=()):
        data = self.wire.encode(header, list(arrays))
        view = memoryview(data)
        while view:
            written = self._write(self.write_fd, view)
            view = view[written:]


class Worker:
    def __init__(self, config, channel, np):
        self.config, self.channel, self.np = config, channel, np
        self.modules = {}  # every graded module imported, by dotted name
        self.stored = {}
        self.logs = []  # CappedLogs of fds 1 and 2, flushed before each reply
        self.ndarray = np.ndarray
        self.numbers = frozenset({float, int, np.float64, np.float32, np.float16, np.int64, np.int32})
        # the parent refuses replies whose text fields are not of these forms: keep to them
        wire = channel.wire
        self.identifier, self.dotted, self.location_form = (
            re.compile(pattern) for pattern in (wire.IDENTIFIER, wire.DOTTED, wire.LOCATION))

    def serve(self):
        while True:
            try:
                header, arrays = self.channel.receive()
            except EOFError:
                return
            op = header.get("op")
            if op == "load":
                self.reply(self.load(header))
            elif op == "call":
                reply, out_arrays = self.call(header, arrays)
                self.reply(reply, out_arrays)
            elif op == "set":
                self.reply(self.set_items(header, arrays))
            elif op == "drop":
                for handle in header.get("handles", []):
                    self.stored.pop(handle, None)
                self.reply({"status": "ok"})
            else:
                self.reply({"status": "protocol", "message": f"unknown op {op!r}"})

    def reply(self, header, arrays=()):
        self.flush_output()  # the parent may stop this worker as soon as it has its last reply
        self.channel.send(header, arrays)

    def flush_output(self):
        """The kept tail of what the student printed, into the log files: between calls, nothing else runs."""
        for log in self.logs:
            log.flush()

    def load(self, header):
        """Import a graded module and say which of the functions asked for it has."""
        name = header["module"]
        try:
            helper = importlib.import_module(self.config["package"] + ".im2col")
            sys.modules.setdefault("im2col", helper)
            module = importlib.import_module(name)
        except BaseException as error:  # the student's import may raise anything, even SystemExit
            return self.describe_error(error)
        self.modules[name] = module
        functions = {}
        for name in header["functions"]:
            value = module
            for part in name.split("."):  # a model's method: FullyConnectedNet.loss
                value = getattr(value, part, None) if value is not None else None
            functions[name] = "missing" if value is None else ("ok" if callable(value) else "not callable")
        return {"status": "ok", "functions": functions}

    def call(self, header, arrays):
        """Call the student's function on read-only inputs; name the inputs it tried to write into."""
        if header.get("writable"):  # the rubric lets this function change its inputs
            arrays = [a.copy() for a in arrays]
        try:
            args = [self.build(spec, arrays) for spec in header["args"]]
            kwargs = {key: self.build(spec, arrays) for key, spec in (header.get("kwargs") or {}).items()}
            owner = self.modules[header["module"]] if header.get("target") is None else self.stored[header["target"]]
            name = header["function"]
        except Exception as error:
            return {"status": "protocol", "message": f"cannot build the call: {error!r}"[:2000]}, []
        try:  # a method or attribute of a stored value (a model) is the student's code: it may raise
            function = getattr(owner, name)
            value = function if header.get("get") else function(*args, **kwargs)
        except BaseException as error:
            reply = self.describe_error(error)
            if reply["status"] == "raised" and "read-only" in reply["message"]:
                reply["mutated"] = self.written_inputs(header, arrays, function)
            return reply, []
        if header.get("store") is not None:
            self.stored[header["store"]] = value
        out_arrays = []
        reply = {"status": "ok", "value": self.describe(value, out_arrays, depth=0)}
        if header.get("report"):  # the parameter entries the function must update, as they are now
            reply["arguments"] = [self.entries(args[index], keys, out_arrays) for index, keys in header["report"]]
        return reply, out_arrays

    def set_items(self, header, arrays):
        """container[key] = value for each item, the container being an attribute of a stored value
        (a model's params): how the parent sets the parameters a model is graded with."""
        try:
            items = {key: self.build(spec, arrays) for key, spec in header["items"].items()}
            owner = self.stored[header["target"]]
        except Exception as error:
            return {"status": "protocol", "message": f"cannot build the request: {error!r}"[:2000]}
        try:
            container = getattr(owner, header["attribute"])
            for key, value in items.items():
                container[key] = value
        except BaseException as error:
            return self.describe_error(error)
        return {"status": "ok"}

    def entries(self, argument, keys, out_arrays):
        found = {}
        for key in keys:
            has = type(argument) is dict and key in argument
            found[key] = self.describe(argument[key], out_arrays, depth=1) if has else {"missing": True}
        return found

    def written_inputs(self, header, arrays, function):
        """Indices of the given arrays the function writes into: calls again with one read-only at a time."""
        written = []
        for index in range(len(arrays)):
            trial = [a if i == index else a.copy() for i, a in enumerate(arrays)]
            try:
                function(*[self.build(spec, trial) for spec in header["args"]])
            except ValueError as error:
                if "read-only" in _safe_str(error):
                    written.append(index)
            except BaseException:
                pass
        return written

    def build(self, spec, arrays):
        if "array" in spec:  # a writable one is the function's to update (batchnorm's running mean)
            return arrays[spec["array"]].copy() if spec.get("writable") else arrays[spec["array"]]
        if "json" in spec:
            return json.loads(json.dumps(spec["json"]))  # a fresh object every call
        if "tuple" in spec:
            return tuple(self.build(item, arrays) for item in spec["tuple"])
        if "list" in spec:
            return [self.build(item, arrays) for item in spec["list"]]
        if "dict" in spec:
            return {key: self.build(item, arrays) for key, item in spec["dict"].items()}
        if "numpy" in spec:  # a dtype argument (dtype=np.float64): a plain numeric type of numpy's
            if spec["numpy"] not in ("float64", "float32"):
                raise ValueError(f"unknown numpy type {spec['numpy']!r}")
            return getattr(self.np, spec["numpy"])
        if "handle" in spec:
            value = self.stored[spec["handle"]]
            return value[spec["index"]] if spec.get("index") is not None else value
        raise ValueError(f"unknown argument spec {spec!r}")

    def describe(self, value, out_arrays, depth):
        """What the student returned: arrays go out as .npy, anything else by its type name only."""
        if value is None:
            return {"none": True}
        if type(value) in self.numbers:  # a loss: sent as a 0-d array of its own dtype
            value = self.np.asarray(value)
        if type(value) is self.ndarray:
            if value.dtype.kind not in "biufc" or value.dtype.fields is not None:
                return {"other": f"ndarray of dtype {value.dtype}"}
            out_arrays.append(value)
            return {"array": len(out_arrays) - 1}
        if type(value) in (tuple, list) and depth == 0:
            return {"sequence": type(value).__name__,
                    "items": [self.describe(item, out_arrays, depth + 1) for item in value]}
        if type(value) is dict and depth <= 1:  # a model's grads, an update rule's config
            if len(value) > 64 or not all(type(key) is str and self.identifier.match(key) for key in value):
                return {"other": f"dict with {len(value)} keys, not all of them names"}
            return {"mapping": {key: self.describe(item, out_arrays, depth=2) for key, item in value.items()}}
        kind = type(value)
        return {"other": f"{kind.__module__}.{kind.__qualname__}"[:300]}

    def describe_error(self, error):
        if isinstance(error, MemoryError):
            return {"status": "memory", "message": "MemoryError"}
        kind = type(error).__name__
        reply = {
            "status": "raised",
            "type": kind if self.identifier.match(kind) else "Exception",
            "message": _safe_str(error)[:2000],
            "where": self.student_location(error),
        }
        if isinstance(error, ImportError):
            name = getattr(error, "name", None)
            reply["module"] = name if isinstance(name, str) and self.dotted.match(name) else None
        if isinstance(error, SyntaxError):
            reply["where"] = self.location(os.path.basename(error.filename or "?"), error.lineno)
        return reply

    def student_location(self, error):
        """file:line of the innermost traceback frame inside the submission, if any."""
        package_dir = self.config["package_dir"]
        location = None
        for frame in traceback.extract_tb(error.__traceback__):
            if frame.filename.startswith(package_dir):
                location = self.location(os.path.relpath(frame.filename, package_dir), frame.lineno)
        return location

    def location(self, filename, line):
        """file:line in the form the parent accepts, or None."""
        text = f"{filename}:{line}"
        return text if type(line) is int and self.location_form.match(text) else None


def _safe_str(error):
    try:
        return str(error)
    except BaseException:
        return "<unprintable exception>"



def main():
    config = json.loads(sys.argv[1])
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    apply_limits(config)
    sys.path[:0] = config["paths"]
    import numpy
    import wire

    channel = Channel(config["read_fd"], config["write_fd"], wire)
    sys.meta_path.insert(0, ForbiddenImports(config["forbidden"], config["package_dir"]))
    sys.meta_path.append(MissingModules(config["forbidden"], config["package_dir"]))
    worker = Worker(config, channel, numpy)
    if config.get("output_head"):
        worker.logs = cap_output(config["output_head"], config["output_tail"])
    channel.send({"status": "ready"})  # the sandbox is up; no student code has run yet
    worker.serve()
    worker.flush_output()


if __name__ == "__main__":
    main()
