"""bench/targets.py: the issue's targets computed from a bench result (synthetic numbers here)."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "bench"))

import targets  # noqa: E402


def _row(case, **us):
    labels = {k: f"simdnorm[{k[3:]}]" if k.startswith("sn_") else k for k in us}
    return {"case": case, "dtype": "float32", "us": {labels[k]: v for k, v in us.items()}}


def _result(threads, rows):
    return {"info": {"threads": threads, "isa_ratio_base": "avx512"}, "rows": rows}


def _find(checked, name_part, case):
    return next(c for c in checked if name_part in c[0] and c[1] == case)


def test_peer_best_peer_out_and_scaling_ratios():
    one = _result(
        1,
        [
            _row("layer_norm 1x768", sn_avx512=0.5, torch=2.0),
            _row("layer_norm 512x768", sn_avx512=40.0, torch=90.0, ort=150.0, numpy=400.0),
            _row("layer_norm 16384x1024", sn_avx512=3000.0, ort=6000.0),
            _row("layer_norm 16384x1024 out=", sn_avx512=2500.0, copy=2400.0),
        ],
    )
    two = _result(2, [_row("layer_norm 512x768", sn_avx512=25.0, torch=50.0)])
    checked = targets.check([one, two])
    name, case, ratio, threshold, note, met = _find(checked, "single row LayerNorm", "layer_norm 1x768")
    assert ratio == 4.0 and met and note == "torch / simdnorm"
    _, _, ratio, _, note, met = _find(checked, "in-cache LayerNorm", "layer_norm 512x768")
    assert ratio == 90.0 / 40.0 and met and note.startswith("torch (fastest peer)")
    _, _, ratio, _, note, met = _find(checked, "out of cache LayerNorm", "layer_norm 16384x1024 out=")
    assert ratio == 6000.0 / 2500.0 and met and "allocating" in note
    _, _, ratio, threshold, _, met = _find(checked, "90 %", "layer_norm 16384x1024 out=")
    assert ratio == 2400.0 / 2500.0 and threshold == 0.9 and met
    _, _, ratio, _, note, met = _find(checked, "2 threads", "layer_norm 512x768")
    assert ratio == 40.0 / 25.0 and not met and "separate runs" in note  # 1.6x < 1.7x
    two_same_loop = _result(2, [_row("layer_norm 512x768", sn_avx512=25.0, **{"simdnorm[1 thread]": 45.0})])
    _, _, ratio, _, note, met = _find(targets.check([one, two_same_loop]), "2 threads", "layer_norm 512x768")
    assert ratio == 45.0 / 25.0 and met and "same loop" in note
    own_loop = _row("layer_norm 512x768", sn_avx512=30.0, **{"simdnorm[1 thread]": 45.0})
    own_loop["scaling"] = {"simdnorm[threads]": 24.0, "simdnorm[1 thread]": 42.0}  # preferred when present
    _, _, ratio, _, note, met = _find(targets.check([one, _result(2, [own_loop])]), "2 threads", "layer_norm 512x768")
    assert ratio == 42.0 / 24.0 and met and "own loop" in note


def test_two_thread_run_alone_judges_no_one_thread_target():
    two = _result(2, [_row("layer_norm 512x768", sn_avx512=25.0, torch=90.0, **{"simdnorm[1 thread]": 45.0})])
    checked = targets.check([two])
    _, _, ratio, _, note, _ = _find(checked, "in-cache LayerNorm", "layer_norm 512x768")
    assert ratio is None and note == "needs a 1-thread run"
    assert _find(checked, "2 threads", "layer_norm 512x768")[2] == 45.0 / 25.0


def test_missing_cases_and_peers_are_never_met():
    checked = targets.check([_result(1, [_row("layer_norm 1x64", sn_avx512=0.5)])])
    _, _, ratio, _, note, met = _find(checked, "single row LayerNorm", "layer_norm 1x64")
    assert ratio is None and not met and note == "torch not measured"
    _, _, ratio, _, note, met = _find(checked, "2 threads", "layer_norm 512x768")
    assert ratio is None and not met and note == "needs a 2-thread run"
    text = targets.render([_result(1, [_row("layer_norm 1x64", sn_avx512=0.5)])])
    assert "0 of 0 measured" in text and "not in this run" in text and "| target |" not in text


def test_upper_bounds_module_time_and_accuracy():
    rows = [_row("module layer_norm 1x768", sn_avx512=0.45), _row("module rms_norm 1x768", sn_avx512=0.6)]
    result = _result(1, rows)
    result["accuracy"] = {"avx512": {"LayerNorm 64x768 c=1e+06": 3e-7}, "scalar": {"LayerNorm 64x768 c=1e+06": 5e-6}}
    checked = targets.check([result])
    _, _, value, threshold, note, met = _find(checked, "module", "module layer_norm 1x768")
    assert value == 0.45 and threshold == 0.5 and met and note == "simdnorm µs per call"
    assert not _find(checked, "module", "module rms_norm 1x768")[5]  # 0.6 µs > 0.5
    _, _, value, _, note, met = _find(checked, "accuracy", targets.ACCURACY_CASE)
    assert value == 5e-6 and not met and note == "worst of 2 ISAs"  # the worst ISA decides
    result["accuracy"]["scalar"]["LayerNorm 64x768 c=1e+06"] = 1e-6
    assert _find(targets.check([result]), "accuracy", targets.ACCURACY_CASE)[5]
    del result["accuracy"]
    _, _, value, _, note, met = _find(targets.check([result]), "accuracy", targets.ACCURACY_CASE)
    assert value is None and not met and note == "no accuracy section in this run"
