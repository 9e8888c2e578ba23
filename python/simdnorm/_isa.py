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


@contextlib.contextmanager
def use_isa(name: str) -> Iterator[str]:
    """Run the enclosed code with the kernel variant ``name`` ("scalar", "avx2", "avx512", "neon").

    The choice is process-wide: other threads see it too while the block runs. The previous
    variant is restored on exit, also after an exception.

    Raises
    ------
    ValueError
        ``name`` is unknown, not compiled in, or not supported by this CPU.
    """
    with _switch_lock:
        previous = _core.current_isa()
        _core._set_isa(name)
    try:
        yield _core.current_isa()
    finally:
        with _switch_lock:
            _core._set_isa(previous)


def show_config(file=None) -> None:
    """Print the version, the compiled / supported / active variants, the thread and output-cache settings."""
    file = sys.stdout if file is None else file
    held = _core._output_cache_stats()
    lines = [
        f"simdnorm {_core.__version__}",
        f"  python:           {platform.python_version()} ({platform.machine()})",
        f"  compiled ISAs:    {', '.join(_core.compiled_isas())}",
        f"  supported ISAs:   {', '.join(_core.available_isas())}",
        f"  active ISA:       {_core.current_isa()}",
        f"  SIMDNORM_ISA:     {os.environ.get('SIMDNORM_ISA', '(unset)')}",
        f"  threads:          {_core.get_num_threads()}"
        f" (SIMDNORM_NUM_THREADS={os.environ.get('SIMDNORM_NUM_THREADS', 'unset')})",
        f"  output cache:     {_core.get_output_cache_limit()} bytes max unused, {held[0]} blocks"
        f" / {held[1]} bytes held (SIMDNORM_OUTPUT_CACHE_BYTES="
        f"{os.environ.get('SIMDNORM_OUTPUT_CACHE_BYTES', 'unset')})",
    ]
    print("\n".join(lines), file=file)
