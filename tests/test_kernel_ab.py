"""bench/kernel_ab/run.sh, the in-process A/B of two builds of the kernels: it builds, runs every
op of its driver and reports both builds' medians and their ratio (no timing is judged), and it
rejects what it cannot run with a message."""

import pathlib
import re
import shutil
import subprocess

import pytest

import simdnorm

ROOT = pathlib.Path(__file__).resolve().parents[1]
RUN = ROOT / "bench" / "kernel_ab" / "run.sh"

pytestmark = pytest.mark.skipif(
    shutil.which("git") is None or not (ROOT / ".git").exists() or shutil.which("g++") is None,
    reason="needs a git checkout and g++ (the tool builds a revision's kernels)",
)

LINE = re.compile(r"^(\w+)\s+(\S+)\s+A\s+([\d.]+) us .*B\s+([\d.]+) us .*B/A ([\d.]+) \[q25 ([\d.]+), q75 ([\d.]+)\]$")


def _run(*args):
    return subprocess.run(["bash", str(RUN), *args], capture_output=True, text=True, cwd=ROOT, timeout=600)


def test_every_op_runs_for_both_builds_and_bad_cases_are_reported():
    """One build (the slow part): the good cases print a line each; the bad ones an error, and the
    exit status is non-zero once any failed."""
    cases = ["layer_norm 5x100", "rms_norm 3x64 --no-weight", "batch_stats 2x3x4x5", "channel_affine 7x33",
             "batch_norm_train 2x3x4x5 --no-bias", "layer_norm 4x1000 --y-offset 0", "rms_norm 6x700 --stream",
             "rms_norm 12x2048 --wide-rows b"]
    bad = {"layer_norm 2x3x4x5": "layer_norm takes rows", "batch_norm_train 4x8": "give NxCxHxW",
           "mystery 4x8": "unknown op mystery", "layer_norm 4x8 --fast": "unknown option --fast",
           "rms_norm 4": "shape must be RxF or NxCxHxW", "rms_norm 4x0": "must be a positive number",
           "layer_norm 4x8 --blocks x": "--blocks must be a positive number",
           "layer_norm 4x8 --wide-rows c": "--wide-rows takes a, b or ab"}
    run = _run("--isa", "scalar", *[case + " --blocks 3" for case in cases], *bad)
    assert run.returncode == 1
    for message in bad.values():
        assert message in run.stderr
    lines = run.stdout.strip().splitlines()
    assert lines[0].startswith("A = scalar kernels of ")
    assert len(lines) == 1 + len(cases)
    for case, line in zip(cases, lines[1:]):
        match = LINE.match(line)
        assert match, line
        op, shape, a_us, b_us, ratio, q25, q75 = match.groups()
        assert (op, shape) == tuple(case.split()[:2])
        assert float(a_us) > 0 and float(b_us) > 0
        assert float(q25) <= float(ratio) <= float(q75)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--isa", "sse9", "layer_norm 1x8"], "unknown ISA sse9"),
        (["--base-isa", "sse9", "layer_norm 1x8"], "unknown ISA sse9"),
        (["--isa", "scalar"], "no case given"),
    ],
)
def test_bad_requests_fail_before_building(args, message):
    run = _run(*args)
    assert run.returncode == 2
    assert message in run.stderr


@pytest.mark.skipif("avx2" not in simdnorm.available_isas(), reason="this CPU runs no AVX2 (x86-64 only)")
def test_base_isa_builds_a_with_another_isas_kernels():
    """--base-isa: A is the scalar build, B the AVX2 one, and the header says which is which."""
    run = _run("--isa", "avx2", "--base-isa", "scalar", "layer_norm 9x300 --blocks 3")
    assert run.returncode == 0, run.stderr
    header, line = run.stdout.strip().splitlines()
    assert header.startswith("A = scalar kernels of ") and header.endswith("B = avx2 kernels of the working tree")
    match = LINE.match(line)
    assert match and float(match.group(3)) > 0 and float(match.group(4)) > 0, line
