"""bench/bench_norms.py --compare, the regression guard: what got slower between two results files
(synthetic numbers here; no timing is judged)."""

import json
import pathlib
import subprocess
import sys

BENCH = pathlib.Path(__file__).resolve().parents[1] / "bench" / "bench_norms.py"


def _write(path, rows_by_threads):
    results = [
        {"info": {"threads": threads}, "rows": [{"case": case, "threads": threads, "us": us} for case, us in rows]}
        for threads, rows in rows_by_threads.items()
    ]
    path.write_text(json.dumps({"results": results}))
    return str(path)


def _compare(*args):
    return subprocess.run([sys.executable, str(BENCH), "--compare", *args], capture_output=True, text=True)


def test_compare_lists_slower_and_faster_cases_and_can_fail(tmp_path):
    old = _write(
        tmp_path / "old.json",
        {
            1: [("layer_norm 512x768", {"simdnorm[avx2]": 100.0, "torch": 200.0}), ("rms_norm 1x768", {"simdnorm[avx2]": 1.0})],
            2: [("layer_norm 512x768", {"simdnorm[avx2]": 60.0})],
        },
    )
    new = _write(
        tmp_path / "new.json",
        {
            1: [("layer_norm 512x768", {"simdnorm[avx2]": 120.0, "torch": 201.0}), ("rms_norm 1x768", {"simdnorm[avx2]": 0.5})],
            2: [("layer_norm 512x768", {"simdnorm[avx2]": 61.0}), ("batch_norm_eval 1x768 NF", {"simdnorm[avx2]": 1.0})],
        },
    )
    run = _compare(old, new, "--threshold", "5")
    assert run.returncode == 0, run.stderr
    slower = run.stdout.split("### Slower")[1].split("### Faster")[0]
    faster = run.stdout.split("### Faster")[1]
    assert "layer_norm 512x768 | 1 | simdnorm[avx2] |" in slower and "+20.0%" in slower
    assert "torch" not in slower and "| 2 |" not in slower  # within the threshold
    assert "rms_norm 1x768 | 1 | simdnorm[avx2] |" in faster and "-50.0%" in faster
    assert "4 common measurements" in run.stdout and "0 measurements only in OLD, 1 only in NEW" in run.stdout

    assert _compare(old, new, "--fail-on-regression").returncode == 1
    assert _compare(old, old, "--fail-on-regression").returncode == 0
    assert _compare(new, old, "--threshold", "90", "--fail-on-regression").returncode == 1  # rms 0.5 -> 1.0 us
    assert _compare(new, old, "--threshold", "150", "--fail-on-regression").returncode == 0


def test_compare_rejects_files_that_are_not_results(tmp_path):
    good = _write(tmp_path / "good.json", {1: [("rms_norm 1x768", {"simdnorm[avx2]": 1.0})]})
    (tmp_path / "broken.json").write_text("{not json")
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "rowless.json").write_text(json.dumps({"results": [{"info": {}}]}))
    for name in ["missing.json", "broken.json", "list.json", "rowless.json"]:
        path = str(tmp_path / name)
        run = _compare(good, path)
        assert run.returncode == 2
        assert f"--compare: cannot read {path}" in run.stderr and "Traceback" not in run.stderr
