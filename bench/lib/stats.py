"""Statistics shared by the bench load generators (imported as `stats`: each script runs from
bench/lib, which Python puts first on its path)."""


def percentile(xs, q):
    """The q-quantile of xs (0 ≤ q ≤ 1), linear between the closest ranks; None when empty."""
    xs = sorted(xs)
    if not xs:
        return None
    k = (len(xs) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)
