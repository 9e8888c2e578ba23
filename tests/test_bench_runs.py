"""bench/bench_norms.py runs end to end on a tiny grid: every kind of case builds, its output is
checked against the float64 reference, and the JSON holds what targets.py reads. No timing is
judged here (the numbers of so short a run mean nothing)."""

import json
import pathlib
import subprocess
import sys

BENCH = pathlib.Path(__file__).resolve().parents[1] / "bench" / "bench_norms.py"


def test_bench_small_grid_every_case_kind(tmp_path):
    out = tmp_path / "result.json"
    argv = [sys.executable, str(BENCH), "--ops", "layer_norm,batch_norm_eval,batch_norm_train,modules,streaming",
            "--shapes", "1x16,4x8x3x3", "--threads", "1", "--repeat", "3", "--sample-ms", "0.2",
            "--peers", "numpy", "--quiet", "--json", str(out)]
    proc = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "WRONG" not in proc.stdout and "FAILED" not in proc.stderr
    (result,) = json.loads(out.read_text())["results"]
    cases = {row["case"]: row for row in result["rows"]}
    for name in ("layer_norm 1x16", "module layer_norm 1x16", "module rms_norm 1x16", "module batch_norm_eval 1x16 NF",
                 "streaming update F=16", "streaming update_normalize F=16", "batch_norm_train 4x8x3x3 NHWC"):
        row = cases[name]
        base = f"simdnorm[{result['info']['isa_ratio_base']}]"
        assert row["us"][base] > 0 and row["us"]["numpy"] > 0, name
        assert max(row["err"].values()) < 1e-5, (name, row["err"])
    isas = result["info"]["isas_measured"]
    assert sorted(result["accuracy"]) == sorted(isas)
    assert max(max(e.values()) for e in result["accuracy"].values()) < 4e-6
    assert "### Accuracy" in proc.stdout and "streaming update_normalize >= 10x" in proc.stdout


def test_copy_destinations_sit_where_asked():
    sys.path.insert(0, str(BENCH.parent))
    import numpy as np
    from _timing import placed_empty

    for like in (np.ones(1, np.float32), np.ones(768, np.float32), np.ones((3, 5000), np.float64)):
        for offset in (0, 64, 2048):
            dst = placed_empty(np, like, offset)
            assert dst.shape == like.shape and dst.dtype == like.dtype and dst.flags.c_contiguous
            assert (dst.ctypes.data - like.ctypes.data) % 4096 == offset
            np.copyto(dst, like)
            assert (dst == like).all()
