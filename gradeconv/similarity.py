"""Which submissions look copied: from each other, from the reference, or from known solutions.

Every side is fingerprinted function by function (gradeconv/fingerprints.py), then what all
students share is removed: the course's starter code (`starter`; signatures and docstrings
never leave fingerprints at all) and fingerprints found in more than a fraction of the class
(common idioms such as `N, C, H, W = x.shape`). Pairs are then scored per function (by name)
and per whole file by the Jaccard index of their fingerprint sets, |A & B| / |A | B|. An
inverted index (fingerprint -> the sides holding it) means only pairs sharing something are
ever counted, so a class of 1,000 needs no half-million full comparisons.

Functions with fewer than `min_fingerprints` fingerprints left (relu, a one-line affine)
are too short to tell copying from the obvious solution and are not compared alone; they
still count in the whole file.

Sides: a class submission (its id, as grading names it), `reference` (the bundled trusted
solutions, reference/layers.py and reference/rnn_layers.py), or a known solution (its path).
Known solutions and the reference are compared with the class, not with each other.
"""
from __future__ import annotations

import concurrent.futures
import itertools
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import reference as reference_package
from gradeconv.fingerprints import FunctionPrint, Unparsable, module_prints
from gradeconv.submissions import (MAX_MODULE_BYTES, NotRegularFile, Submission, SubmissionError, Unpacked,
                                   is_junk, read_regular_file)

REFERENCE = "reference"
REFERENCE_MODULES = ("layers.py", "rnn_layers.py")
#: flagged at or above this similarity (tuned in benchmarks/similarity_quality.py)
DEFAULT_THRESHOLD = 0.6
#: a fingerprint in more than this fraction of the class (and more than COMMON_FLOOR students) is an idiom
DEFAULT_COMMON = 0.5
COMMON_FLOOR = 10
#: fingerprints a function must keep to be compared on its own (about four statements)
DEFAULT_MIN_FINGERPRINTS = 8
#: below this many submissions, fingerprinting runs in this process (a pool costs more than it saves)
PARALLEL_FROM = 40


class SimilarityError(Exception):
    """A mistake the user can fix (a missing folder, an unreadable starter file): one line."""


@dataclass(frozen=True)
class Settings:
    threshold: float = DEFAULT_THRESHOLD
    common: float = DEFAULT_COMMON
    min_fingerprints: int = DEFAULT_MIN_FINGERPRINTS


@dataclass
class Side:
    """One side of a comparison: a submission, the reference or a known solution, with its functions."""
    id: str
    kind: str  # "submission" | "reference" | "known"
    path: str
    functions: dict[str, FunctionPrint] = field(default_factory=dict)
    problem: str | None = None  # why it could not be fingerprinted (not valid Python, no module...)


@dataclass(frozen=True)
class Match:
    """A flagged pair: `function` None for the whole file; similarity in [0, 1]."""
    a: str
    b: str
    function: str | None
    similarity: float

    def to_json(self) -> dict:
        return {"a": self.a, "b": self.b, "function": self.function, "similarity": self.similarity}


@dataclass
class Report:
    """The flagged pairs, sorted (most similar first), with what is needed to show them."""
    matches: list[Match]
    sides: dict[str, Side]
    kept: dict[tuple[str, str], frozenset[int]]  # (side id, function) -> fingerprints left after filtering
    settings: Settings
    compared: int  # class submissions fingerprinted

    @property
    def not_compared(self) -> list[Side]:
        return [side for side in self.sides.values() if side.problem]


# ---------------------------------------------------------------- reading sides

def read_side(submission: Submission, module_file: str, kind: str = "submission") -> Side:
    """A submission's (or known solution's) graded module, fingerprinted; `problem` says why not."""
    side = Side(submission.id, kind, str(submission.path))
    try:
        with Unpacked(submission, module_file) as module:
            source = read_regular_file(module, MAX_MODULE_BYTES).decode("utf-8", errors="replace")
        side.functions = module_prints(source)
    except (SubmissionError, Unparsable) as error:
        side.problem = str(error)
    except NotRegularFile as error:
        side.problem = f"{submission.path}: {module_file} is {error}"
    except OSError as error:
        side.problem = f"{submission.path}: cannot be read ({error.strerror or error})"
    return side


def reference_side() -> Side:
    """The bundled trusted solutions as one side, `reference`."""
    folder = Path(reference_package.__file__).parent
    side = Side(REFERENCE, "reference", REFERENCE)
    for name in REFERENCE_MODULES:
        side.functions.update(module_prints((folder / name).read_text(encoding="utf-8")))
    return side


def known_solutions(folder: Path) -> list[Submission]:
    """The known solutions in a --known folder: one per .py file, .zip or subfolder, each named by its path."""
    if not folder.is_dir():
        raise SimilarityError(f"--known {folder}: {'not a folder' if folder.exists() else 'no such folder'}; "
                              "give a folder holding one known solution per file or subfolder")
    entries = sorted(child for child in folder.iterdir()
                     if not is_junk(child) and (child.is_dir() or child.suffix.lower() in (".py", ".zip")))
    return [Submission(str(child), child) for child in entries]


def starter_prints(paths: list[Path]) -> frozenset[int]:
    """Every fingerprint of the course's starter file(s): code every student was given."""
    found: set[int] = set()
    for path in paths:
        try:
            source = read_regular_file(path, MAX_MODULE_BYTES).decode("utf-8", errors="replace")
            functions = module_prints(source)
        except NotRegularFile as error:
            raise SimilarityError(f"--starter {path}: {error}") from None
        except Unparsable as error:
            raise SimilarityError(f"--starter {path}: {error}") from None
        for function in functions.values():
            found.update(function.fingerprints)
    return frozenset(found)


def read_class(submissions: list[Submission], module_file: str, jobs: int = 1) -> list[Side]:
    """Every submission's side, in the class's order, on `jobs` processes for a large class."""
    if jobs <= 1 or len(submissions) < PARALLEL_FROM:
        return [read_side(s, module_file) for s in submissions]
    with concurrent.futures.ProcessPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(read_side, submissions, itertools.repeat(module_file), chunksize=16))


# ---------------------------------------------------------------- comparing

def compare(students: list[Side], others: list[Side], settings: Settings = Settings(),
            starter: frozenset[int] = frozenset()) -> Report:
    """Score every pair of students, and every student against every other side (reference, known)."""
    taken = {side.id for side in students}
    for side in others:  # a student whose file is named reference.py keeps its id; the bundled one is renamed
        while side.id in taken:
            side.id += " (bundled)" if side.kind == "reference" else " (known)"
        taken.add(side.id)
    sides = [side for side in [*students, *others] if not side.problem]
    is_student = [side.kind == "submission" for side in sides]
    kept = _filtered(sides, is_student, settings, starter)
    sizes: list[dict[str, int]] = [{} for _ in sides]  # the functions each side has to compare, by size
    shared: defaultdict[tuple[int, int], dict[str, int]] = defaultdict(dict)
    matches: list[Match] = []
    for name in sorted({name for (_, name) in kept}):
        sets = {index: kept[(side.id, name)] for index, side in enumerate(sides)
                if len(kept.get((side.id, name), ())) >= settings.min_fingerprints}
        for index, prints in sets.items():
            sizes[index][name] = len(prints)
        for pair, count in _shared(sets, is_student).items():
            shared[pair][name] = count
            similarity = count / (len(sets[pair[0]]) + len(sets[pair[1]]) - count)
            if similarity >= settings.threshold:
                matches.append(_match(sides, is_student, *pair, name, similarity))
    for (first, second), counts in shared.items():
        both = sizes[first].keys() & sizes[second].keys()
        union = sum(sizes[first][name] + sizes[second][name] - counts.get(name, 0) for name in both)
        similarity = sum(counts.values()) / union
        if similarity >= settings.threshold:
            matches.append(_match(sides, is_student, first, second, None, similarity))
    matches.sort(key=lambda m: (-m.similarity, m.a, m.b, m.function or ""))
    return Report(matches, {side.id: side for side in [*students, *others]}, kept, settings,
                  sum(side.kind == "submission" for side in sides))


def _filtered(sides: list[Side], is_student: list[bool], settings: Settings,
              starter: frozenset[int]) -> dict[tuple[str, str], frozenset[int]]:
    """Each side's fingerprints per function without the starter's and the class's common ones."""
    counts: Counter[tuple[str, int]] = Counter()
    for side, student in zip(sides, is_student):
        if student:
            for name, function in side.functions.items():
                counts.update((name, fingerprint) for fingerprint in function.fingerprints)
    class_size = sum(is_student)
    common = max(COMMON_FLOOR, settings.common * class_size)
    kept = {}
    for side in sides:
        for name, function in side.functions.items():
            kept[(side.id, name)] = frozenset(fingerprint for fingerprint in function.fingerprints
                                              if fingerprint not in starter and counts[(name, fingerprint)] <= common)
    return kept


def _shared(sets: dict[int, frozenset[int]], is_student: list[bool]) -> Counter[tuple[int, int]]:
    """How many fingerprints each pair of sides shares, for the pairs sharing any, through an inverted index.

    Pairs without a student (the reference and a known solution) are not counted.
    """
    index: defaultdict[int, list[int]] = defaultdict(list)
    for side, prints in sets.items():
        for fingerprint in prints:
            index[fingerprint].append(side)
    shared: Counter[tuple[int, int]] = Counter()
    for holders in index.values():
        if len(holders) > 1:
            shared.update(pair for pair in itertools.combinations(holders, 2)
                          if is_student[pair[0]] or is_student[pair[1]])
    return shared


def _match(sides: list[Side], is_student: list[bool], first: int, second: int,
           function: str | None, similarity: float) -> Match:
    """A match with a student first: two students in id order; a student, then the reference or a known solution."""
    a, b = sides[first], sides[second]
    if not is_student[first] or (is_student[second] and b.id < a.id):
        a, b = b, a
    return Match(a.id, b.id, function, round(similarity, 3))


def shared_lines(report: Report, first: str, second: str, function: str) -> tuple[set[int], set[int]]:
    """The source lines (numbered in each file) of `function` that hold fingerprints both sides kept."""
    a, b = report.sides[first].functions.get(function), report.sides[second].functions.get(function)
    if a is None or b is None:
        return set(), set()
    common = report.kept.get((first, function), frozenset()) & report.kept.get((second, function), frozenset())
    return _lines(a, common), _lines(b, common)


def _lines(function: FunctionPrint, fingerprints: frozenset[int]) -> set[int]:
    lines: set[int] = set()
    for fingerprint in fingerprints:
        for start, end in function.fingerprints.get(fingerprint, []):
            lines.update(range(start, end + 1))
    return lines


def find_copies(submissions: list[Submission], module_file: str, known: list[Path] = (),
                starter: list[Path] = (), settings: Settings = Settings(), jobs: int = 1,
                with_reference: bool = True) -> Report:
    """The similarity report of a class against itself, the reference and the --known folders."""
    others = [reference_side()] if with_reference else []
    for folder in known:
        others += [read_side(s, module_file, "known") for s in known_solutions(folder)]
    starter_set = starter_prints(list(starter))
    return compare(read_class(submissions, module_file, jobs), others, settings, starter_set)
