"""Recall and precision of `gradeconv similarity` on planted disguised copies, and its speed.

The class: independently written solutions (the sample class's alice and judyjones, the
assignment 2 and 3 solutions of tests/solutions, the variants in
benchmarks/similarity_corpus/: loops over kernel offsets, sliding-window views, loops over
output positions, hand-built im2col, sample-by-sample assignment 2 layers), the sample
class's other students (alice's file with one bug each, ivan a copy of judyjones), and for
every independent solution (and the bundled reference) one disguised copy per disguise of
tests/disguises.py: renamed, reformatted, commented, reordered, `+=` rewritten, `for` as
`while`, and all at once.

Ground truth: files of the same origin are related (alice's group includes the buggy
students and the assignment 2 solution, whose conv and pool layers are alice's); any other
flagged pair is a false positive. Recall counts the planted (copy, original) pairs flagged;
precision counts the flagged pairs of related files among all flagged pairs.

Speed: a synthetic class of 1,000 files, each a disguised copy of one of the solutions
(seeded differently), fingerprinted on `--jobs` processes and compared.

    PYTHONPATH=. python3 benchmarks/similarity_quality.py [--jobs 2] [--class-size 1000]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gradeconv import similarity  # noqa: E402
from gradeconv.submissions import find_submissions  # noqa: E402
from tests.disguises import KINDS, disguise  # noqa: E402

CORPUS = ROOT / "benchmarks" / "similarity_corpus"
#: id -> (origin group, module file): independently written solutions
INDEPENDENT = {
    "alice": ("alice", ROOT / "submissions/alice/cs231n/layers.py"),
    "judyjones": ("judy", ROOT / "submissions/judyjones_LATE_48213_990417_layers.py"),
    "solution_a2": ("alice", ROOT / "tests/solutions/a2/cs231n/layers.py"),
    "solution_a3": ("solution_a3", ROOT / "tests/solutions/a3/cs231n/rnn_layers.py"),
    **{path.stem: (path.stem, path) for path in sorted(CORPUS.glob("*.py"))},
}
#: the sample class's derived files: id -> (group, module file)
DERIVED = {
    **{folder.name: ("alice", folder / "cs231n/layers.py") for folder in sorted((ROOT / "submissions").iterdir())
       if folder.is_dir() and folder.name != "alice"},
}
REFERENCE_FILES = {"reference_layers": ROOT / "reference/layers.py", "reference_rnn": ROOT / "reference/rnn_layers.py"}


def build_quality_class(folder: Path) -> dict[str, str]:
    """Write the class into `folder` (one .py per student); returns id -> origin group."""
    groups = {}
    for name, (group, path) in {**INDEPENDENT, **DERIVED}.items():
        (folder / f"{name}.py").write_text(path.read_text())
        groups[name] = group
    originals = {name: path for name, (_, path) in INDEPENDENT.items()} | REFERENCE_FILES
    for name, path in originals.items():
        group = INDEPENDENT[name][0] if name in INDEPENDENT else similarity.REFERENCE
        for seed, kind in enumerate(KINDS):
            copy = f"copy_{name}_{kind}"
            (folder / f"{copy}.py").write_text(disguise(path.read_text(), kind, seed))
            groups[copy] = group
    groups["ivan"] = "judy"
    import shutil
    shutil.copy(ROOT / "submissions/ivan.zip", folder / "ivan.zip")
    return groups


def origin(groups: dict[str, str], side: str) -> str:
    return similarity.REFERENCE if side == similarity.REFERENCE else groups[side]


def quality(settings: similarity.Settings, verbose: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        groups = build_quality_class(folder)
        found = find_submissions([folder]).submissions
        everything = similarity.Settings(threshold=0.0, common=settings.common,
                                         min_fingerprints=settings.min_fingerprints)
        report = similarity.find_copies(found, "layers.py", settings=everything)
    pairs: dict[tuple[str, str], list[similarity.Match]] = defaultdict(list)
    for match in report.matches:
        if match.similarity >= settings.threshold:
            pairs[tuple(sorted((match.a, match.b)))].append(match)
    unrelated = [m for m in report.matches if origin(groups, m.a) != origin(groups, m.b)]
    closest = max(unrelated, key=lambda m: m.similarity, default=None)
    related = [pair for pair in pairs if origin(groups, pair[0]) == origin(groups, pair[1])]
    false = [pair for pair in pairs if pair not in related]
    planted = [(copy, copy[len("copy_"):-len(kind) - 1], kind) for copy in groups if copy.startswith("copy_")
               for kind in KINDS if copy.endswith("_" + kind)]
    caught_by_kind: dict[str, list[bool]] = defaultdict(list)
    for copy, original, kind in planted:
        other = similarity.REFERENCE if original.startswith("reference_") else original
        caught_by_kind[kind].append(tuple(sorted((copy, other))) in pairs)
    caught = sum(sum(flags) for flags in caught_by_kind.values())
    print(f"class: {len(groups)} files ({len(planted)} planted copies); threshold {settings.threshold}")
    print(f"recall: {caught}/{len(planted)} planted copies flagged ({caught / len(planted):.1%}); by disguise: "
          + ", ".join(f"{kind} {sum(flags)}/{len(flags)}" for kind, flags in caught_by_kind.items()))
    print(f"precision: {len(related)}/{len(pairs)} flagged pairs are of the same origin "
          f"({len(related) / max(len(pairs), 1):.1%}); {len(false)} pairs of independent solutions flagged")
    if closest:
        print(f"highest similarity of independent solutions: {closest.similarity} ({closest.a}, {closest.b}, "
              f"{closest.function or 'whole file'})")
    planted_files = [m.similarity for m in report.matches if m.function is None and _planted(m)]
    planted_functions = [m.similarity for m in report.matches if m.function is not None and _planted(m)]
    print(f"lowest similarity of a planted copy to its original: whole file {min(planted_files)}, "
          f"a function {min(planted_functions)}")
    for pair in false if verbose else false[:10]:
        print("  false positive:", pair, [(m.function, m.similarity) for m in pairs[pair]])
    missed = [(copy, kind) for copy, original, kind in planted
              if tuple(sorted((copy, similarity.REFERENCE if original.startswith("reference_") else original)))
              not in pairs]
    for copy, kind in missed:
        print("  missed:", copy)


def _planted(match: similarity.Match) -> bool:
    """A match of a planted copy with its original."""
    for copy, other in ((match.a, match.b), (match.b, match.a)):
        if copy.startswith("copy_"):
            original = copy[len("copy_"):].rsplit("_", 1)[0]
            if other == original or (other == similarity.REFERENCE and original.startswith("reference_")):
                return True
    return False


def speed(size: int, jobs: int, settings: similarity.Settings) -> None:
    sources = [path.read_text() for _, path in INDEPENDENT.values()] + [p.read_text() for p in REFERENCE_FILES.values()]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        for i in range(size):
            text = disguise(sources[i % len(sources)], KINDS[(i // len(sources)) % len(KINDS)], seed=i)
            (folder / f"student{i:04d}.py").write_text(text)
        built = time.perf_counter() - started
        submissions = find_submissions([folder]).submissions
        started = time.perf_counter()
        sides = similarity.read_class(submissions, "layers.py", jobs)
        read = time.perf_counter() - started
        started = time.perf_counter()
        report = similarity.compare(sides, [similarity.reference_side()], settings)
        compared = time.perf_counter() - started
    print(f"speed: {size} files from {len(sources)} solutions (built in {built:.1f} s): fingerprinted in "
          f"{read:.1f} s on {jobs} processes, compared in {compared:.1f} s, total {read + compared:.1f} s; "
          f"{len(report.matches)} flagged entries")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--class-size", type=int, default=1000)
    parser.add_argument("--threshold", type=float, default=similarity.DEFAULT_THRESHOLD)
    parser.add_argument("--min-fingerprints", type=int, default=similarity.DEFAULT_MIN_FINGERPRINTS)
    parser.add_argument("--verbose", action="store_true", help="list every false positive")
    args = parser.parse_args()
    settings = similarity.Settings(threshold=args.threshold, min_fingerprints=args.min_fingerprints)
    quality(settings, args.verbose)
    if args.class_size:
        speed(args.class_size, args.jobs, settings)


if __name__ == "__main__":
    main()
