"""The worker: the only gradeconv code that runs inside the student's process.

It imports the student's module, calls the functions the parent asks for and
sends back what they returned. It judges nothing: the parent compares, scores
and decides. Only the standard library, numpy and ``wire`` are used here, and
everything this file needs from them is bound before student code is imported,
so a submission that patches numpy or the standard library hurts only itself.
"""
import importlib
import json
import os
import re
import resource
import sys
import traceback

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


class ForbiddenImports:
    """A meta path finder refusing the modules the rubric forbids (torch, tensorflow, ...)."""

    def __init__(self, roots):
        self.roots = frozenset(roots)

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in self.roots:
            raise ImportError(f"import of {name!r} is forbidden by the rubric", name=name)
        return None


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
        self.module = None
        self.stored = {}
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
                self.channel.send(self.load())
            elif op == "call":
                reply, out_arrays = self.call(header, arrays)
                self.channel.send(reply, out_arrays)
            elif op == "drop":
                for handle in header.get("handles", []):
                    self.stored.pop(handle, None)
                self.channel.send({"status": "ok"})
            else:
                self.channel.send({"status": "protocol", "message": f"unknown op {op!r}"})

    def load(self):
        try:
            helper = importlib.import_module(self.config["package"] + ".im2col")
            sys.modules.setdefault("im2col", helper)
            self.module = importlib.import_module(self.config["module"])
        except BaseException as error:  # the student's import may raise anything, even SystemExit
            return self.describe_error(error)
        functions = {}
        for name in self.config["functions"]:
            value = getattr(self.module, name, None)
            functions[name] = "missing" if value is None else ("ok" if callable(value) else "not callable")
        return {"status": "ok", "functions": functions}

    def call(self, header, arrays):
        """Call the student's function on read-only inputs; name the inputs it tried to write into."""
        if header.get("writable"):  # the rubric lets this function change its inputs
            arrays = [a.copy() for a in arrays]
        try:
            args = [self.build(spec, arrays) for spec in header["args"]]
            function = getattr(self.module, header["function"])
        except Exception as error:
            return {"status": "protocol", "message": f"cannot build the call: {error!r}"[:2000]}, []
        try:
            value = function(*args)
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
    sys.meta_path.insert(0, ForbiddenImports(config["forbidden"]))
    Worker(config, channel, numpy).serve()


if __name__ == "__main__":
    main()
