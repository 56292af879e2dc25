#!/usr/bin/env python3
"""Reference values for tests/rankstats.rs, computed with scipy.

    python3 -m pip install scipy && python3 scripts/scipy_fixtures.py

The vectors are defined by formulas that tests/rankstats.rs repeats exactly.
"""
import math

from scipy import stats

CASES = {
    "ties_a": ([float(i * 37 % 11) for i in range(40)], [float(i * 53 % 7) + (i % 3) * 0.5 for i in range(40)]),
    "squares_b": ([float(i) for i in range(30)], [float(i * i % 17) for i in range(30)]),
    "small_c": ([1.0, 1.0, 1.0, 2.0, 2.0, 3.0], [1.0, 2.0, 2.0, 2.0, 3.0, 3.0]),
    "large_d": ([math.floor(math.sin(i) * 1000.0) / 10.0 for i in range(1000)], [float(math.floor(math.cos(i * 0.7) * 50.0)) for i in range(1000)]),
}

for name, (x, y) in CASES.items():
    tau = float(stats.kendalltau(x, y)[0])
    rho = float(stats.spearmanr(x, y)[0])
    r = float(stats.pearsonr(x, y)[0])
    print(f'("{name}", {tau!r}, {rho!r}, {r!r}),')
