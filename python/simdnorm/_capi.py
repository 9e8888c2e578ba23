"""Where the C-level API's header lives (simdnorm/capi.h; the Cython declarations are __init__.pxd)."""

import os


def get_include() -> str:
    """Directory to add to a C / C++ / Cython extension's include path for ``simdnorm/capi.h``.

    ``cimport simdnorm`` finds the package's ``__init__.pxd`` on ``sys.path``; the header it
    declares is installed as ``<get_include()>/simdnorm/capi.h``::

        Extension("mymod", ["mymod.pyx"], include_dirs=[simdnorm.get_include()])
    """
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "include")
