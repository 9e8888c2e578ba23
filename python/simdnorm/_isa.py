"""Run-time ISA selection and configuration report (nothing here is on a per-call path)."""

from __future__ import annotations

import contextlib
import os
import platform
import sys
import threading
from collections.abc import Iterator

from . import _core

_switch_lock = threading.RLock()
_open_blocks: list[tuple[object, str]] = []  # (token, variant) of the use_isa blocks now running, oldest first
_variant_before_blocks = ""


@contextlib.contextmanager
def use_isa(name: str) -> Iterator[str]:
    """Run the enclosed code with the kernel variant ``name`` ("scalar", "avx2", "avx512", "neon").

    The choice is process-wide: other threads see it too while the block runs. On exit (also after
    an exception) the variant of the most recently entered block still running takes over, or, when
    none is left, the variant active before the first of them: blocks in several threads may end in
    any order and the process still returns to its variant. One call never mixes variants.

    Raises
    ------
    ValueError
        ``name`` is unknown, not compiled in, or not supported by this CPU.
    """
    global _variant_before_blocks
    token = object()
    with _switch_lock:
        before = _core.current_isa()
        _core._set_isa(name)  # raises before anything is recorded
        if not _open_blocks:
            _variant_before_blocks = before
        _open_blocks.append((token, _core.current_isa()))
    try:
        yield _core.current_isa()
    finally:
        with _switch_lock:
            _open_blocks[:] = [block for block in _open_blocks if block[0] is not token]
            _core._set_isa(_open_blocks[-1][1] if _open_blocks else _variant_before_blocks)


def _tuning_text() -> str:
    tuning = _core._tuning()
    wide = tuning["interleave_wide_rows"]
    source = "this CPU's default" if wide == tuning["cpu_default"]["interleave_wide_rows"] else "overridden"
    path = "next row's sums interleaved (Intel's default)" if wide else "groups of four rows (AMD's default)"
    return f"LayerNorm / RMSNorm rows of 4-16 KiB: {path}; {source}"


def show_config(file=None) -> None:
    """Print the version, the compiled / supported / active variants, the kernel path choices that
    depend on the CPU's make, the thread and output-cache settings."""
    file = sys.stdout if file is None else file
    held = _core._output_cache_stats()
    lines = [
        f"simdnorm {_core.__version__}",
        f"  python:           {platform.python_version()} ({platform.machine()})",
        f"  compiled ISAs:    {', '.join(_core.compiled_isas())}",
        f"  supported ISAs:   {', '.join(_core.available_isas())}",
        f"  active ISA:       {_core.current_isa()}",
        f"  SIMDNORM_ISA:     {os.environ.get('SIMDNORM_ISA', '(unset)')}",
        f"  tuning:           {_tuning_text()}",
        f"  threads:          {_core.get_num_threads()}"
        f" (SIMDNORM_NUM_THREADS={os.environ.get('SIMDNORM_NUM_THREADS', 'unset')})",
        f"  output cache:     {_core.get_output_cache_limit()} bytes max unused, {held[0]} blocks"
        f" / {held[1]} bytes held (SIMDNORM_OUTPUT_CACHE_BYTES="
        f"{os.environ.get('SIMDNORM_OUTPUT_CACHE_BYTES', 'unset')})",
    ]
    print("\n".join(lines), file=file)
