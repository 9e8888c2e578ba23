"""bench/targets.py: the issue's targets computed from a bench result (synthetic numbers here)."""

import json
import pathlib
import sys

import pytest

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


def test_the_other_grids_out_of_cache_size_is_not_counted_missing():
    """The quick grid times 8192x1024 out=, --full 16384x1024 out=: a run with one of them has nothing
    missing for the out-of-cache targets."""
    rows = [_row(f"{op} 16384x1024 out=", sn_avx512=2500.0, copy=2400.0) for op in ("layer_norm", "rms_norm")]
    for op in ("layer_norm", "rms_norm"):
        rows.append(_row(f"{op} 16384x1024", sn_avx512=3000.0, ort=6000.0))
    checked = targets.check([_result(1, rows)])
    out_of_cache = [c for c in checked if "out of cache" in c[0]]
    assert {c[1] for c in out_of_cache if c[2] is None} == {"layer_norm 8192x1024 out=", "rms_norm 8192x1024 out="}
    text = targets.render([_result(1, rows)])
    line = next(l for l in text.splitlines() if "measured (target, case) pairs met" in l)
    unmeasured = len(checked) - sum(c[2] is not None for c in checked)
    assert f"; {unmeasured - 4} not in this run" in line


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


def _memory_result(rows):
    """A 1-thread result with the machine fields traffic_floor_us reads (1 MiB L2, 32 MiB L3)."""
    result = _result(1, rows)
    result["info"].update({"L2_bytes": 1 << 20, "L3_bytes": 32 << 20})
    result["ceilings"] = {"L2": {"GBps": 100.0}, "L3": {"GBps": 50.0}, "DRAM": {"GBps": 20.0}}
    return result


def _case_row(case, op, shape, layout, bytes_, **us):
    row = _row(case, **us)
    x_bytes = 4
    for n in shape:
        x_bytes *= n
    row.update({"op": op, "shape": shape, "layout": layout, "bytes": bytes_, "working_set": 2 * x_bytes})
    return row


def test_traffic_floor_counts_a_reread_only_when_the_statistics_unit_leaves_l2():
    mib = 1 << 20
    long_row = _case_row("layer_norm 1x1048576", "layer_norm", [1, mib], "rows", 16 * mib, copy=200.0)
    short_rows = _case_row("layer_norm 512x768", "layer_norm", [512, 768], "rows", 2 * 512 * 768 * 4, copy=100.0)
    result = _memory_result([long_row, short_rows])
    # 4 MiB rows do not fit the 1 MiB L2: 16 MiB at the faster of the row's copy (8 MiB in 200 us)
    # and the L3 ceiling (50 GB/s = 50,000 bytes per us), then x again at the L3 ceiling.
    assert targets.traffic_floor_us(long_row, result) == 16 * mib / max(8 * mib / 200.0, 50e3) + 4 * mib / 50e3
    # 3 KiB rows: no reread; the L3 ceiling is faster than the row's copy here.
    assert targets.traffic_floor_us(short_rows, result) == short_rows["bytes"] / 50e3
    nchw = _case_row("batch_norm_train 8x256x14x14 NCHW", "batch_norm_train", [8, 256, 14, 14], "NCHW", 1000, copy=1.0)
    nhwc = dict(nchw, layout="NHWC")
    big_channel = _case_row("batch_norm_train 4096x8x32x32 NCHW", "batch_norm_train", [4096, 8, 32, 32], "NCHW", 10, copy=1.0)
    assert targets._statistics_unit_bytes(nchw) == 8 * 14 * 14 * 4  # one channel
    assert targets._statistics_unit_bytes(nhwc) == 8 * 14 * 14 * 64  # a cache line of channels per row
    assert targets._statistics_unit_bytes(big_channel) == 4096 * 32 * 32 * 4 > (1 << 20)
    # No floor beyond 3/4 of the L3 (x or y may stay partly cached; allocating copies fault pages),
    # nor for rows whose bytes are not x, y and parameters.
    dram = _case_row("layer_norm 16384x1024", "layer_norm", [16384, 1024], "rows", 2 * 64 * mib, copy=9000.0)
    assert targets.traffic_floor_us(dram, result) is None
    streaming = _case_row("streaming update F=768", "streaming update", [1, 768], "rows", 6144, copy=0.3)
    assert targets.traffic_floor_us(streaming, result) is None


def test_render_marks_missed_ratios_whose_floor_is_slower_than_the_time_asked():
    mib = 1 << 20
    rows = [
        # LayerNorm 1x1M: torch 500 us asks for 250 us at 2x, the floor is 20 MiB / 50 GB/s = 419 us.
        _case_row("layer_norm 1x1048576", "layer_norm", [1, mib], "rows", 16 * mib, sn_avx512=400.0, torch=500.0,
                  copy=300.0),
        # 512x768: asks for 73 us (2x torch), floor ~63 us: missed, but within reach.
        _case_row("layer_norm 512x768", "layer_norm", [512, 768], "rows", 3 * mib, sn_avx512=84.0, torch=146.0,
                  copy=70.0),
        _case_row("module layer_norm 1x768", "module layer_norm", [1, 768], "rows", 6144, sn_avx512=0.55),
    ]
    result = _memory_result(rows)
    result["floors_ns"] = {"simdnorm._core._noop(x) (no-op C call)": 160.0}
    found = targets.reach([result])
    needed, floor = found[("one long row LayerNorm >= 2x the best peer (1 thread)", "layer_norm 1x1048576")]
    assert needed == 250.0 and floor == 20 * mib / 50e3
    needed, floor = found[("in-cache LayerNorm >= 2x the best peer", "layer_norm 512x768")]
    assert needed == 73.0 and floor < needed
    assert found[("module LayerNorm / RMSNorm 1x768 <= 0.5 µs", "module layer_norm 1x768")] == (0.5, 0.16)
    text = targets.render([result])
    assert "1 of 2 ask for less time than the case's traffic floor" in text
    long_line = next(line for line in text.splitlines() if "| layer_norm 1x1048576 |" in line)
    assert "out of reach here" in long_line
    assert "reachable in principle" in next(line for line in text.splitlines() if "| layer_norm 512x768 |" in line)
    assert "no-op bound call with x takes 0.16 µs" in text


def test_missed_speed_ups_of_l3_sized_cases_are_set_against_the_copy_scaling():
    mib = 1 << 20
    one = _memory_result([])  # 1 thread: L3 copy at 50 GB/s
    two = _memory_result(
        [
            # Working set 3 MiB: L3 on the 1 MiB L2 of _memory_result; 1.5x < 1.7x.
            dict(_case_row("batch_norm_eval 8x256x14x14 NCHW", "batch_norm_eval", [8, 256, 14, 14], "NCHW",
                           3 * mib, sn_avx512=30.0), scaling={"simdnorm[threads]": 30.0, "simdnorm[1 thread]": 45.0}),
            # A working set of 0.5 MiB (set here): L2, where no copy scaling is given; 1.2x.
            dict(_case_row("rms_norm 512x768", "rms_norm", [512, 768], "rows", mib // 2, sn_avx512=10.0),
                 working_set=mib // 2, scaling={"simdnorm[threads]": 10.0, "simdnorm[1 thread]": 12.0}),
        ]
    )
    two["info"]["threads"] = 2
    two["ceilings"]["L3"]["GBps"] = 80.0  # two threads together: 1.6x one
    assert targets.copy_scaling("batch_norm_eval 8x256x14x14 NCHW", [one, two]) == ("L3", 80.0 / 50.0)
    assert targets.copy_scaling("rms_norm 512x768", [one, two]) is None
    found = targets.reach([one, two])
    assert found[("2 threads >= 1.7x 1 thread (in cache)", "batch_norm_eval 8x256x14x14 NCHW")] == (1.7, 1.6)
    assert ("2 threads >= 1.7x 1 thread (in cache)", "rms_norm 512x768") not in found
    line = next(x for x in targets.render([one, two]).splitlines() if "| batch_norm_eval 8x256x14x14 NCHW |" in x)
    assert "np.copyto at L3 scales 1.60x" in line and "cannot reach it here" in line
    two["ceilings"]["L3"]["GBps"] = 95.0  # 1.9x: the copy would allow the target
    line = next(x for x in targets.render([one, two]).splitlines() if "| batch_norm_eval 8x256x14x14 NCHW |" in x)
    assert "scales 1.90x" in line and "reachable in principle" in line


def test_command_line_reports_bad_files_without_a_traceback(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        targets.main(["--help"])
    assert exit_info.value.code == 0
    assert "results" in capsys.readouterr().out
    for name, content in [("missing.json", None), ("bad.json", "{not json"), ("list.json", "[]")]:
        path = tmp_path / name
        if content is not None:
            path.write_text(content)
        with pytest.raises(SystemExit) as exit_info:
            targets.main([str(path)])
        assert exit_info.value.code == 2
        assert str(path) in capsys.readouterr().err
    good = tmp_path / "good.json"
    one = _result(1, [_row("layer_norm 1x768", sn_avx512=0.5, torch=2.0)])
    good.write_text(json.dumps({"results": [one]}))
    assert targets.main([str(good)]) == 0
    assert "Issue 4 targets" in capsys.readouterr().out
