"""ISA dispatch: available/current ISAs, use_isa, SIMDNORM_ISA (in subprocesses), show_config."""

import json
import os
import platform
import subprocess
import sys
from importlib import metadata

import numpy as np
import pytest

import reference
import simdnorm

KNOWN = {"scalar", "avx2", "avx512", "neon"}
IS_X86 = platform.machine().lower() in ("x86_64", "amd64", "x64", "i686", "i386")

# Imports simdnorm with warnings recorded and reports what the process ended up with.
PROBE = r"""
import json, warnings
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import simdnorm
print(json.dumps({
    "current": simdnorm.current_isa(),
    "available": simdnorm.available_isas(),
    "warnings": [[w.category.__name__, str(w.message)] for w in caught],
}))
"""


def run_probe(env_value):
    env = {k: v for k, v in os.environ.items() if k != "SIMDNORM_ISA"}
    if env_value is not None:
        env["SIMDNORM_ISA"] = env_value
    proc = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=60,
                          cwd=os.path.dirname(os.path.abspath(__file__)))
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_available_isas():
    isas = simdnorm.available_isas()
    assert isinstance(isas, list) and isas
    assert all(isinstance(name, str) for name in isas)
    assert set(isas) <= KNOWN
    assert len(set(isas)) == len(isas)
    assert isas[-1] == "scalar"  # best first; scalar is the fallback
    if IS_X86:
        assert "neon" not in isas
        order = [name for name in ["avx512", "avx2", "scalar"] if name in isas]
        assert isas == order


def test_compiled_isas_cover_available():
    assert set(simdnorm.available_isas()) <= set(simdnorm.compiled_isas())


def test_current_isa_is_available():
    assert simdnorm.current_isa() in simdnorm.available_isas()


@pytest.mark.parametrize("name", simdnorm.available_isas())
def test_use_isa_switches_and_restores(name):
    before = simdnorm.current_isa()
    with simdnorm.use_isa(name) as active:
        assert simdnorm.current_isa() == name
        assert active == name
        x = np.random.default_rng(0).standard_normal((3, 21))
        np.testing.assert_allclose(simdnorm.layer_norm(x), reference.layer_norm(x), **reference.tol(np.float64))
    assert simdnorm.current_isa() == before


@pytest.mark.parametrize("name", simdnorm.available_isas())
def test_use_isa_restores_after_exception(name):
    before = simdnorm.current_isa()
    with pytest.raises(RuntimeError, match="boom"):
        with simdnorm.use_isa(name):
            assert simdnorm.current_isa() == name
            raise RuntimeError("boom")
    assert simdnorm.current_isa() == before


def test_use_isa_restores_after_simdnorm_error():
    before = simdnorm.current_isa()
    with pytest.raises(ValueError, match=r"\beps\b"):
        with simdnorm.use_isa("scalar"):
            simdnorm.layer_norm(np.ones((2, 3)), eps=-1.0)
    assert simdnorm.current_isa() == before


def test_use_isa_nests():
    isas = simdnorm.available_isas()
    before = simdnorm.current_isa()
    with simdnorm.use_isa(isas[-1]):
        with simdnorm.use_isa(isas[0]):
            assert simdnorm.current_isa() == isas[0]
        assert simdnorm.current_isa() == isas[-1]
    assert simdnorm.current_isa() == before


def test_use_isa_blocks_in_threads_may_end_in_any_order():
    """Thread A enters, B enters, A leaves, B leaves: the process ends on its own variant, and
    while B's block runs after A left, B's variant stays active."""
    import threading

    isas = simdnorm.available_isas()
    before = simdnorm.current_isa()
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
    seen = {}

    def a():
        with simdnorm.use_isa(isas[0]):
            a_in.set()
            b_in.wait(10)
        a_out.set()

    def b():
        a_in.wait(10)
        with simdnorm.use_isa(isas[-1]):
            b_in.set()
            a_out.wait(10)
            seen["inside b after a left"] = simdnorm.current_isa()

    threads = [threading.Thread(target=a), threading.Thread(target=b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert seen == {"inside b after a left": isas[-1]}
    assert simdnorm.current_isa() == before


@pytest.mark.skipif(not IS_X86, reason="neon is the native variant on ARM; x86-only check")
def test_use_isa_neon_on_x86_raises():
    before = simdnorm.current_isa()
    with pytest.raises(ValueError, match="neon"):
        with simdnorm.use_isa("neon"):
            pass
    assert simdnorm.current_isa() == before


def test_use_isa_any_unavailable_known_name_raises():
    missing = sorted(KNOWN - set(simdnorm.available_isas()))
    assert missing  # at least neon (x86) or avx2/avx512 (ARM)
    for name in missing:
        with pytest.raises(ValueError, match=name):
            with simdnorm.use_isa(name):
                pass
    assert simdnorm.current_isa() in simdnorm.available_isas()


def test_isas_agree(rng):
    x = rng.standard_normal((7, 300)).astype(np.float32)
    results = {}
    for name in simdnorm.available_isas():
        with simdnorm.use_isa(name):
            results[name] = simdnorm.layer_norm(x)
    for name, y in results.items():
        np.testing.assert_allclose(y, results["scalar"], rtol=1e-5, atol=1e-5, err_msg=name)


def test_default_isa_in_subprocess_is_best():
    report = run_probe(None)
    assert report["current"] == report["available"][0]
    assert report["available"] == simdnorm.available_isas()
    assert report["warnings"] == []


@pytest.mark.parametrize("name", simdnorm.available_isas())
def test_env_var_selects_isa(name):
    report = run_probe(name)
    assert report["current"] == name
    assert report["warnings"] == []


def test_env_var_is_case_insensitive_or_warns():
    name = simdnorm.available_isas()[-1].upper()
    report = run_probe(name)
    # Either accepted as "scalar" or rejected with the fallback warning; never a silent other ISA.
    if report["warnings"]:
        assert report["current"] == report["available"][0]
    else:
        assert report["current"] == "scalar"


@pytest.mark.parametrize("value", ["bogus", "sse9", " "])
def test_env_var_unknown_warns_and_falls_back(value):
    report = run_probe(value)
    assert report["current"] == report["available"][0]
    assert any(cat == "RuntimeWarning" for cat, _ in report["warnings"]), report
    assert any("SIMDNORM_ISA" in msg for _, msg in report["warnings"]), report


def test_env_var_unsupported_warns_and_falls_back():
    missing = sorted(KNOWN - set(simdnorm.available_isas()))
    for name in missing:
        report = run_probe(name)
        assert report["current"] == report["available"][0]
        messages = [msg for cat, msg in report["warnings"] if cat == "RuntimeWarning"]
        assert messages and any(name in msg for msg in messages), report


def test_env_var_empty_is_default():
    report = run_probe("")
    assert report["current"] == report["available"][0]
    assert report["warnings"] == []


def test_env_var_warning_is_an_error_under_W_error():
    env = dict(os.environ, SIMDNORM_ISA="bogus")
    proc = subprocess.run([sys.executable, "-W", "error::RuntimeWarning", "-c", "import simdnorm"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "RuntimeWarning" in proc.stderr and "SIMDNORM_ISA" in proc.stderr


def test_show_config(capfd):
    simdnorm.show_config()
    text = capfd.readouterr().out
    assert metadata.version("simdnorm") in text
    assert simdnorm.__version__ in text
    for name in simdnorm.available_isas():
        assert name in text
    for name in simdnorm.compiled_isas():
        assert name in text
    assert simdnorm.current_isa() in text
    assert str(simdnorm.get_num_threads()) in text
    assert "thread" in text.lower()


def test_show_config_reports_forced_isa(capfd):
    with simdnorm.use_isa("scalar"):
        simdnorm.show_config()
    lines = capfd.readouterr().out.lower().splitlines()
    active = [line for line in lines if "active" in line or "current" in line]
    assert active and all("scalar" in line for line in active)


def test_tuning_hooks_switch_the_wide_row_path_and_show_config_reports_it():
    """_set_tuning overrides the CPU's default for LayerNorm / RMSNorm rows of 4-16 KiB (None
    restores it); show_config says which path runs and whether it is the default. The results are
    the same bits either way (test_large_paths.py)."""
    import io

    default = simdnorm._core._tuning()["cpu_default"]["interleave_wide_rows"]
    try:
        for wide in (False, True):
            simdnorm._core._set_tuning(interleave_wide_rows=wide)
            assert simdnorm._core._tuning()["interleave_wide_rows"] is wide
            text = io.StringIO()
            simdnorm.show_config(file=text)
            line = [row for row in text.getvalue().splitlines() if row.strip().startswith("tuning:")][0]
            assert ("interleaved" in line) == wide
            assert ("this CPU's default" in line) == (wide == default)
        with pytest.raises(TypeError, match="bool or None"):
            simdnorm._core._set_tuning(interleave_wide_rows=1)
    finally:
        simdnorm._core._set_tuning()
    assert simdnorm._core._tuning()["interleave_wide_rows"] is default
