"""simdnorm: hand-vectorized LayerNorm, RMSNorm and BatchNorm for NumPy.

The best kernel variant for this CPU (AVX-512, AVX2, NEON or scalar) is chosen at import;
``SIMDNORM_ISA`` or :func:`use_isa` override it, process-wide.

Calls without ``out=`` reuse the last small result (below 128 KiB) of the same function family,
module or RunningStats once the caller has dropped it: same values as a fresh array, no allocation.
"""

import warnings as _warnings

from . import _core
from ._core import (
    BatchNorm,
    LayerNorm,
    RMSNorm,
    RunningStats,
    __version__,
    available_isas,
    batch_norm,
    batch_stats,
    compiled_isas,
    current_isa,
    fold_batch_norm,
    get_num_threads,
    get_output_cache_limit,
    layer_norm,
    rms_norm,
    scale_shift,
    set_num_threads,
    set_output_cache_limit,
)
from ._capi import get_include
from ._isa import show_config, use_isa

if _core._isa_init_warning:
    _warnings.warn(_core._isa_init_warning, RuntimeWarning, stacklevel=2)
if _core._output_cache_init_warning:
    _warnings.warn(_core._output_cache_init_warning, RuntimeWarning, stacklevel=2)

__all__ = [
    "BatchNorm",
    "LayerNorm",
    "RMSNorm",
    "RunningStats",
    "__version__",
    "available_isas",
    "batch_norm",
    "batch_stats",
    "compiled_isas",
    "current_isa",
    "fold_batch_norm",
    "get_include",
    "get_num_threads",
    "get_output_cache_limit",
    "layer_norm",
    "rms_norm",
    "scale_shift",
    "set_num_threads",
    "set_output_cache_limit",
    "show_config",
    "use_isa",
]
