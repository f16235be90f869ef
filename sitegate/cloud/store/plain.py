"""Plain decimal texts to integer millionths, many at once (numpy), exactly.

The store hands billing a register's values as one comma-separated text (SQLite's
``group_concat``, PostgreSQL's ``string_agg``): parsing it here at C speed spares a Python
object per reading. Only the plain form is taken ("-12.345": ASCII digits, at most one
point, a leading minus, no more decimals than the scale, at most 18 digits and sign): the
same rule as the load's row-by-row integer path, so the numbers are the ones Decimal gives.
Anything else is None, and the caller reads the register row by row.
"""

from __future__ import annotations

import numpy as np

_POW10 = 10 ** np.arange(19, dtype=np.int64)
_DIGITS = 18


_PLAIN = np.zeros(256, dtype=bool)
_PLAIN[[44, 45, 46, *range(48, 58)]] = True  # , - . 0-9


def plain_units(text: str, count: int, scale: int) -> np.ndarray | None:
    """``count`` comma-separated plain decimals as int64 multiples of 10**-scale; None if
    the text is not exactly that."""
    if count == 0 or not text:
        return np.zeros(0, dtype=np.int64) if count == 0 and not text else None
    try:
        a = np.frombuffer(text.encode("ascii"), dtype=np.uint8)
    except UnicodeEncodeError:
        return None
    if not bool(_PLAIN[a].all()):
        return None
    sep, dot, neg = a == 44, a == 46, a == 45
    seps = np.flatnonzero(sep)
    if len(seps) != count - 1:
        return None
    start = np.zeros(len(a), dtype=bool)
    start[0] = True
    start[seps[seps + 1 < len(a)] + 1] = True
    if bool((neg & ~start).any()) or (len(seps) and seps[-1] == len(a) - 1):
        return None  # a minus not in front, or an empty last value
    same = _same_decimals(text, a, seps, np.flatnonzero(dot), np.flatnonzero(neg & start),
                          count, scale)
    if same is not None:
        return same
    dig = (a >= 48) & (a <= 57)
    tok = np.cumsum(sep)  # each character's value (a separator counts to the next one)
    starts = np.flatnonzero(start)
    if len(starts) != count:
        return None  # an empty value
    if bool((np.bincount(tok[dot], minlength=count) > 1).any()):
        return None  # two points
    digits = np.bincount(tok[dig], minlength=count)
    if bool((digits == 0).any()):
        return None
    cdot = np.cumsum(dot)
    seen_dot = (cdot - (cdot - dot)[starts][tok]) > 0  # after the point within its value
    pad = scale - np.bincount(tok[dig & seen_dot], minlength=count)
    negative = np.bincount(tok[neg], minlength=count)
    if bool((pad < 0).any()) or bool((digits + negative + pad > _DIGITS).any()):
        return None
    # each digit times 10 ** (digits after it in its value + pad), summed per value
    cdig = np.cumsum(dig)
    ends = np.concatenate((starts[1:] - 1, [len(a) - 1]))
    where = np.flatnonzero(dig)
    t = tok[where]
    power = cdig[ends][t] - cdig[where] + pad[t]
    parts = (a[where].astype(np.int64) - 48) * _POW10[power]
    firsts = np.searchsorted(t, np.arange(count))
    values = np.add.reduceat(parts, firsts)
    return np.where(negative > 0, -values, values)


def _same_decimals(text: str, a: np.ndarray, seps: np.ndarray, dots: np.ndarray,
                   minus: np.ndarray, count: int, scale: int) -> np.ndarray | None:
    """The usual case, fast: every value with the same number of decimals (a meter's
    fixed resolution), parsed as integers without their points. None: not that case."""
    ends = np.append(seps, len(a))  # one past each value
    begins = np.concatenate(([0], seps + 1))
    if len(dots) == 0:
        decimals = 0
        points = 0
    elif len(dots) == count:
        after = ends - dots - 1  # a point in each value: it must lie inside its own value
        if not bool((dots >= begins).all()) or int(after.min()) != int(after.max()):
            return None
        decimals, points = int(after[0]), 1
    else:
        return None
    pad = scale - decimals
    lengths = ends - begins - points  # digits and sign
    has_minus = np.zeros(count, dtype=bool)
    if len(minus):
        has_minus[np.searchsorted(begins, minus)] = True
    if pad < 0 or int((lengths - has_minus).min()) < 1 or int(lengths.max()) + pad > _DIGITS:
        return None
    values = np.fromstring(text.replace(".", "") if points else text, dtype=np.int64,
                           sep=",")
    if len(values) != count:
        return None
    return values * _POW10[pad]
