"""``python -m benchmarks compare``: identical runs pass, any per-trial difference is named."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.__main__ import main as bench_main
from benchmarks.suite.compare import compare_grids


def _write(directory: Path, runs: list[dict]) -> Path:
    directory.mkdir()
    (directory / "p.jsonl").write_text("".join(json.dumps(r) + "\n" for r in runs))
    return directory


def _run(seed: int, values: list[float], wall: float = 1.0) -> dict:
    return {"problem": "p", "sampler": "nars", "seed": seed, "value": values,
            "wall_s": wall, "sampler_s": [wall] * len(values), "commit": "abc", "date": "d"}


def test_timings_may_differ_values_may_not(tmp_path: Path) -> None:
    before = _write(tmp_path / "a", [_run(0, [1.0, 2.0]), _run(1, [3.0])])
    same = _write(tmp_path / "b", [_run(1, [3.0], wall=9.0), _run(0, [1.0, 2.0], wall=5.0)])
    assert compare_grids(before, same) == (2, [])
    changed = _write(tmp_path / "c", [_run(0, [1.0, 2.5]), _run(1, [3.0])])
    n, differences = compare_grids(before, changed)
    assert n == 2 and differences == ["('p', 'nars', 0): value differs"]
    missing = _write(tmp_path / "d", [_run(0, [1.0, 2.0])])
    assert compare_grids(before, missing)[1] == [f"('p', 'nars', 1): recorded only in {before}"]
    assert bench_main(["compare", str(before), str(same)]) == 0
    assert bench_main(["compare", str(before), str(changed)]) == 1
    assert bench_main(["compare", str(tmp_path / "nothing"), str(same)]) == 2
