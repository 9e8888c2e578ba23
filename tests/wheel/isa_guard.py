"""pytest plugin for tests/wheel/build_and_check.sh: proves a run tests the INSTALLED wheel with the
ISA named by SIMDNORM_ISA.

Loaded with ``-p isa_guard`` (the script puts tests/wheel on PYTHONPATH; nothing else is in that
folder that could shadow simdnorm). It fails the session before any test runs when

* simdnorm was imported from the source tree instead of the venv's site-packages, or
* importing simdnorm warned (the forced variant was refused), or
* ``simdnorm.current_isa()`` is not the forced variant,

and fails it afterwards if the suite left another variant active (``use_isa`` must restore).
"""

import os
import sys
import sysconfig
import warnings

import pytest

_forced = os.environ.get("SIMDNORM_ISA", "")


def pytest_configure(config):
    if not _forced:
        raise pytest.UsageError("isa_guard: SIMDNORM_ISA must be set")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        import simdnorm
    site = os.path.realpath(sysconfig.get_paths()["purelib"])
    location = os.path.realpath(simdnorm.__file__)
    if not location.startswith(site + os.sep):
        raise pytest.UsageError(f"isa_guard: simdnorm imported from {location}, not from the venv ({site})")
    refused = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    if refused:
        raise pytest.UsageError(f"isa_guard: importing simdnorm warned: {refused}")
    if simdnorm.current_isa() != _forced:
        raise pytest.UsageError(f"isa_guard: current_isa() is {simdnorm.current_isa()!r}, SIMDNORM_ISA={_forced!r}")


def pytest_report_header(config):
    import simdnorm

    return (
        f"isa_guard: SIMDNORM_ISA={_forced} current_isa()={simdnorm.current_isa()} "
        f"available={simdnorm.available_isas()} simdnorm from {os.path.dirname(simdnorm.__file__)} "
        f"(python {sys.version.split()[0]})"
    )


def pytest_sessionfinish(session, exitstatus):
    import simdnorm

    if simdnorm.current_isa() != _forced:
        print(f"\nisa_guard: the suite left current_isa()={simdnorm.current_isa()!r} active, expected {_forced!r}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
