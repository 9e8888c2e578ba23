from typing import overload, Literal, Sequence, Union

import numpy as np
import numpy.typing as npt

_Float = Union[np.float32, np.float64]
_Array = npt.NDArray[_Float]
_Axis = Union[int, Sequence[int]]

__version__: str
_isa_init_warning: str

def available_isas() -> list[str]: ...
def compiled_isas() -> list[str]: ...
def current_isa() -> str: ...
def _set_isa(name: str) -> None: ...
def set_num_threads(n: int) -> None: ...
def get_num_threads() -> int: ...
def _noop(x: object, out: object = None) -> None: ...
@overload
def layer_norm(
    x: npt.ArrayLike,
    weight: npt.ArrayLike | None = None,
    bias: npt.ArrayLike | None = None,
    *,
    eps: float = 1e-5,
    axis: _Axis = -1,
    out: _Array | None = None,
    return_stats: Literal[False] = False,
) -> _Array: ...
@overload
def layer_norm(
    x: npt.ArrayLike,
    weight: npt.ArrayLike | None = None,
    bias: npt.ArrayLike | None = None,
    *,
    eps: float = 1e-5,
    axis: _Axis = -1,
    out: _Array | None = None,
    return_stats: Literal[True],
) -> tuple[_Array, _Array, _Array]: ...
def rms_norm(
    x: npt.ArrayLike,
    weight: npt.ArrayLike | None = None,
    *,
    eps: float | None = 1e-6,
    axis: _Axis = -1,
    out: _Array | None = None,
) -> _Array: ...
def batch_norm(
    x: npt.ArrayLike,
    running_mean: _Array | None = None,
    running_var: _Array | None = None,
    weight: npt.ArrayLike | None = None,
    bias: npt.ArrayLike | None = None,
    *,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
    axis: int = 1,
    out: _Array | None = None,
) -> _Array: ...
def batch_stats(x: npt.ArrayLike, *, axis: int = 1) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], int]: ...
def fold_batch_norm(
    running_mean: _Array,
    running_var: _Array,
    weight: npt.ArrayLike | None = None,
    bias: npt.ArrayLike | None = None,
    *,
    eps: float = 1e-5,
) -> tuple[_Array, _Array]: ...
def scale_shift(
    x: npt.ArrayLike, scale: npt.ArrayLike, shift: npt.ArrayLike, *, axis: int = 1, out: _Array | None = None
) -> _Array: ...
