"""Float32 accuracy of simdnorm on offset data, every ISA: max abs error of the normalized output
against a float64 NumPy reference for rows c + N(0, 1). bench_norms.py prints the same table.

    python bench/accuracy.py
"""

import argparse

import numpy as np

import simdnorm
from _accuracy import offset_errors, render  # bench/ is sys.path[0] when run as a script

if __name__ == "__main__":
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()
    errors = offset_errors(np, simdnorm, simdnorm.available_isas())
    print(render(errors))
    print(f"\nworst: {max(max(e.values()) for e in errors.values()):.1e} (issue 4: <= 4e-6)")
