"""Prometheus query results (``resultType`` matrix or vector) as one summary line per series.

A range query returns dozens of ``[timestamp, "value"]`` pairs per series, and an answer rarely reads them
one by one: it wants the range, the extremes and when they happened, level changes and spikes. Each series
becomes that summary, and its raw points sit behind one stash marker. Kept apart from the table code
because nothing here is a record array: it is time-series statistics.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from headroom.engine.compressors._json_values import fmt_num, is_scalar, median, scalar_text
from headroom.engine.compressors.base import Context


def prometheus(doc: Any) -> tuple[str, list[dict[str, Any]]] | None:
    """The result type and the series, when ``doc`` is a Prometheus query response."""
    data = doc.get("data") if isinstance(doc, dict) else None
    if not isinstance(data, dict):
        return None
    kind, result = data.get("resultType"), data.get("result")
    if kind not in ("matrix", "vector") or not isinstance(result, list) or not result:
        return None
    if not all(isinstance(s, dict) and isinstance(s.get("metric", {}), dict) for s in result):
        return None
    return str(kind), result


def prometheus_lines(ctx: Context, doc: dict[str, Any], prom: tuple[str, list[dict[str, Any]]]) -> list[str]:
    """The response's scalar fields, a header line (series, time span, step), then one line per series."""
    result_type, series = prom
    out = [f"{k}: {scalar_text(v)}" for k, v in doc.items() if k != "data" and is_scalar(v)]
    points = [_points(s) for s in series]
    stamps = [t for pts in points for t, _ in pts]
    day = _same_day(stamps)
    fmt_t = _time_formatter(day)
    if stamps:
        step = _step([t for t, _ in points[0]]) if points and len(points[0]) > 1 else None
        span = f"{fmt_t(min(stamps))} .. {fmt_t(max(stamps))}" + (f" UTC {day}" if day else "")
        out.append(
            f"prometheus {result_type}: {len(series)} series, {span}" + (f", step {fmt_num(step)}s" if step else "")
        )
    for i, (s, pts) in enumerate(zip(series, points), 1):
        metric: dict[str, Any] = s["metric"] if isinstance(s.get("metric"), dict) else {}
        label = _series_label(metric)
        if result_type != "matrix":
            out.append(f"{i}. {label} = {', '.join(fmt_num(v) for _, v in pts)}")
            continue
        raw = "\n".join(f"{scalar_text(p[0])} {scalar_text(p[1])}" for p in s.get("values", []) if _pair(p))
        ctx.count("points", len(pts))
        marker = ctx.stash(raw, f"{len(pts)} raw points of series {i}") if raw else ""
        out.append(f"{i}. {label}: {_series_summary(pts, fmt_t)} {marker}".rstrip())
    return out


def _pair(p: Any) -> bool:
    return isinstance(p, list) and len(p) == 2 and isinstance(p[0], (int, float)) and not isinstance(p[0], bool)


def _points(series: dict[str, Any]) -> list[tuple[float, float]]:
    raw = series.get("values")
    if not isinstance(raw, list):
        raw = [series.get("value")]
    out: list[tuple[float, float]] = []
    for p in raw:
        if _pair(p):
            try:
                out.append((float(p[0]), float(p[1])))
            except (TypeError, ValueError):
                continue
    return out


def _series_label(metric: dict[str, Any]) -> str:
    name = scalar_text(metric.get("__name__", ""))
    labels = ", ".join(f"{k}={scalar_text(v)}" for k, v in metric.items() if k != "__name__")
    return f"{name}{{{labels}}}" if labels else name or "{}"


def _same_day(stamps: list[float]) -> str | None:
    if not stamps:
        return None
    try:
        lo = datetime.fromtimestamp(min(stamps), tz=timezone.utc).date()
        hi = datetime.fromtimestamp(max(stamps), tz=timezone.utc).date()
    except (OverflowError, OSError, ValueError):
        return None
    return lo.isoformat() if lo == hi else None


def _time_formatter(day: str | None) -> Callable[[float], str]:
    def fmt(ts: float) -> str:
        try:
            dt = datetime.fromtimestamp(ts, tz=timezone.utc)
        except (OverflowError, OSError, ValueError):
            return fmt_num(ts)
        return dt.strftime("%H:%M:%S") if day else dt.strftime("%Y-%m-%dT%H:%M:%SZ")

    return fmt


def _step(ts: list[float]) -> float | None:
    diffs = Counter(b - a for a, b in itertools.pairwise(ts))
    return diffs.most_common(1)[0][0] if diffs else None


def _series_summary(pts: list[tuple[float, float]], fmt_t: Callable[[float], str]) -> str:
    finite = [(t, v) for t, v in pts if math.isfinite(v)]
    if not finite:
        return f"n={len(pts)}, no finite values"
    vs = [v for _, v in finite]
    lo_t, lo = min(finite, key=lambda p: p[1])
    hi_t, hi = max(finite, key=lambda p: p[1])
    if lo == hi:
        return f"n={len(pts)} constant {fmt_num(lo)}"
    mean = sum(vs) / len(vs)
    parts = [
        f"n={len(pts)} min={fmt_num(lo)}@{fmt_t(lo_t)} max={fmt_num(hi)}@{fmt_t(hi_t)} "
        f"mean={fmt_num(_round(mean))} last={fmt_num(vs[-1])}"
    ]
    distinct = sorted(set(vs))
    if len(distinct) <= 3:
        changes = [f"{fmt_num(a)}→{fmt_num(b)}@{fmt_t(t)}" for (_, a), (t, b) in itertools.pairwise(finite) if a != b]
        parts.append("changes " + ", ".join(changes[:8]) + (f" +{len(changes) - 8}" if len(changes) > 8 else ""))
        return "; ".join(parts)
    if all(b >= a for a, b in itertools.pairwise(vs)):
        start = next(t for (t, a), (_, b) in itertools.pairwise(finite) if b > a)
        parts.append(f"rising from {fmt_num(vs[0])} after {fmt_t(start)}")
    shift = _level_shift(finite)
    if shift is not None:
        k, before, after = shift
        parts.append(f"level shift at {fmt_t(finite[k][0])}: mean {fmt_num(before)} → {fmt_num(after)}")
        return "; ".join(parts)
    runs = _anomaly_runs(finite, fmt_t)
    if runs:
        parts.append("anomalies " + ", ".join(runs))
    return "; ".join(parts)


def _level_shift(finite: list[tuple[float, float]]) -> tuple[int, float, float] | None:
    """The split that best cuts the series into two flat segments, when the step dwarfs the noise."""
    vs = [v for _, v in finite]
    n = len(vs)
    if n < 8:
        return None
    pre, pre_sq = [0.0], [0.0]
    for v in vs:
        pre.append(pre[-1] + v)
        pre_sq.append(pre_sq[-1] + v * v)

    def sse(a: int, b: int) -> float:
        m = b - a
        s = pre[b] - pre[a]
        return max(pre_sq[b] - pre_sq[a] - s * s / m, 0.0)

    best_k, best = 0, math.inf
    for k in range(3, n - 2):
        cost = sse(0, k) + sse(k, n)
        if cost < best:
            best_k, best = k, cost
    if not best_k:
        return None
    before = (pre[best_k]) / best_k
    after = (pre[n] - pre[best_k]) / (n - best_k)
    noise = math.sqrt(best / n)
    if abs(after - before) <= 6 * noise or abs(after - before) <= 0.2 * max(abs(before), abs(after)):
        return None
    return best_k, _round(before), _round(after)


def _round(x: float) -> float:
    """Four significant digits, or a whole number for big values (byte rates, counters)."""
    return float(round(x)) if abs(x) >= 1000 else float(f"{x:.4g}")


def _anomaly_runs(finite: list[tuple[float, float]], fmt_t: Callable[[float], str]) -> list[str]:
    """Runs of points far from the series' median (robust z > 5), as time ranges with their values."""
    vs = sorted(v for _, v in finite)
    med = median(vs)
    mad = median(sorted(abs(v - med) for v in vs))
    scale = 1.4826 * mad if mad else max(abs(med) * 0.05, 1e-9)
    flags = [abs(v - med) / scale > 5 for _, v in finite]
    if sum(flags) > len(flags) * 0.4:
        return []
    runs: list[str] = []
    i = 0
    while i < len(finite):
        if not flags[i]:
            i += 1
            continue
        j = i
        while j + 1 < len(finite) and flags[j + 1]:
            j += 1
        seg = [v for _, v in finite[i : j + 1]]
        lo, hi = fmt_num(min(seg)), fmt_num(max(seg))
        val = lo if lo == hi else f"{lo}..{hi}"
        a, b = finite[i][0], finite[j][0]
        span = fmt_t(a) if a == b else f"{fmt_t(a)}–{fmt_t(b)}"
        runs.append(f"{span} ({j - i + 1} pts, {val})" if j > i else f"{span} ({val})")
        i = j + 1
    if len(runs) > 5:
        runs = [*runs[:5], f"+{len(runs) - 5} more"]
    return runs
