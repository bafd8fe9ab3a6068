"""An array of records as a table: the columns said once in notes, one line per distinct row.

:mod:`._json_columns` decides which columns carry nothing per row; this module writes the result: the notes
(constant, mostly-constant with its exceptions, derived, empty, not shown, notable rows), the header, and
the rows, with duplicates folded to a count and, when the table is too big, only head, tail, trouble rows
and question hits shown (the rest stashed as table lines, cheaper to read back than their JSON). Rows that
look like trouble (error status, warning type) keep their long cells whole.
"""

from __future__ import annotations

import re
from typing import Any

from headroom.engine.compressors._json_columns import IDENT_KEYS, Columns
from headroom.engine.compressors._json_values import (
    MAX_LIST_ITEMS,
    MISSING,
    compact,
    escape,
    fmt_num,
    is_scalar,
    median,
    plain,
    scalar_text,
    text_cell,
)
from headroom.engine.compressors.base import Context

#: Table rows beyond this many characters are sampled: head, tail, trouble rows and question hits stay.
TABLE_BUDGET = 24_000
HEAD_ROWS = 40
TAIL_ROWS = 10
MAX_RELEVANT_ROWS = 40

#: Keys whose values are judged for trouble words.
_STATUS_KEYS = frozenset(
    {
        "status",
        "state",
        "type",
        "level",
        "severity",
        "conclusion",
        "result",
        "outcome",
        "reason",
        "phase",
        "health",
        "loglevel",
        "lvl",
        "state_reason",
    }
)
_CODE_KEYS = ("code", "status_code", "exit_code", "returncode")
_TROUBLE_RE = re.compile(
    r"\b(errors?|fail(?:ed|ure|ing|s)?|fatal|crit(?:ical)?|panic|exception|warn(?:ing)?|unhealthy|backoff|"
    r"crashloop\w*|oomkilled|timed?.?out|denied|rejected|down|dead|killed|evicted|unreachable|notready)\b",
    re.IGNORECASE,
)


class Table:
    """One array of records: columns classified once, rows rendered, deduplicated and (when huge) sampled.

    ``seen_notes`` is shared by every table of one document: a note block printed once (the same nested
    table's constants on every page of a paginated dump) is referred back to instead of repeated.
    """

    def __init__(self, ctx: Context, seen_notes: dict[str, int], rows: list[dict[str, Any]], pad: str) -> None:
        self.ctx = ctx
        self.seen_notes = seen_notes
        self.pad = pad
        self.cols = Columns(rows)
        self.values = self.cols.values
        #: Rows the header calls notable: never sampled away.
        self.protected: set[int] = set()

    def lines(self, title: str = "") -> list[str]:
        cols = self.cols
        n = cols.n
        columns = cols.names
        notes: list[str] = []
        all_empty = [c for c in columns if not cols.present(c)]
        # ``assignee: null`` in some rows and an object in others: the dotted columns already say it.
        empty = [c for c in all_empty if not any(k.startswith(c + ".") for k in columns)]
        hidden = set(all_empty)
        rest = [c for c in columns if c not in hidden]
        has_ident = any(cols.last[c] in ("number", "name", "title", "key", "login") for c in rest if "." not in c)
        noise = [c for c in rest if cols.is_noise(c, has_ident, rest)]
        hidden = set(noise)
        rest = [c for c in rest if c not in hidden]
        constant = [c for c in rest if cols.is_constant(c)] if n >= 2 else []
        hidden = set(constant)
        rest = [c for c in rest if c not in hidden]
        derived = cols.derive_urls(rest) if n >= 3 else {}
        derived.update(cols.same_as([c for c in rest if c not in derived]) if n >= 3 else {})
        rest = [c for c in rest if c not in derived]
        rest, overflow = cols.choose(rest)
        mostly = self._mostly_constant(rest)
        rest = [c for c in rest if not any(m.startswith(f"  {c}=") for m in mostly)]

        if constant:
            notes.extend(self._once("constant:", [f"  {c}={self._note_value(cols.first_set(c), c)}" for c in constant]))
        if mostly:
            notes.extend(self._once("mostly:", mostly))
        if derived:
            notes.extend(self._once("derived:", [f"  {c}={t}" for c, t in derived.items()]))
        if empty:
            notes.append("empty: " + ", ".join(empty))
        if noise or overflow:
            notes.append("not shown (in the original): " + ", ".join(noise + overflow))

        trouble = self._trouble(rest)
        notable = self._notable(rest, trouble)
        if notable:
            notes.append("notable: " + "; ".join(notable))

        # Duplicates are judged on what is shown: rows that differ only in hidden noise collapse too.
        key_cols = rest + overflow
        keys: Any = zip(*[cols.frozen(c) for c in key_cols]) if key_cols else [()] * n
        order: list[int] = []
        counts: dict[Any, int] = {}
        first_of: dict[Any, int] = {}
        for i, key in enumerate(keys):
            if key not in counts:
                counts[key] = 0
                first_of[key] = i
                order.append(i)
            counts[key] += 1
        dup_count = {first_of[k]: v for k, v in counts.items()}
        folded = len(order) < n
        if folded:
            self.ctx.count("duplicate rows", n - len(order))

        long_cols = [c for c in rest if cols.is_long(c)]
        shown_cols = [c for c in rest if c not in long_cols] + long_cols
        header = " | ".join(shown_cols)
        if folded:
            header += " | ×count"
        sample = self._sample(order, shown_cols, trouble)
        out = [f"{self.pad}{title}{n} records" + (f" ({n - len(order)} duplicates folded)" if folded else "")]
        out.extend(self.pad + note for note in notes)
        out.append(f"{self.pad}columns: {header}")
        cells_of = [(c, self.values[c], cols.plain_cells(c)) for c in shown_cols]
        skipped: list[int] = []
        for i in order:
            if i not in sample:
                skipped.append(i)
                continue
            if skipped:
                out.append(self.pad + self._elide_rows(skipped, shown_cols, dup_count))
                skipped = []
            full = bool(trouble[i])
            # Plain cells come from the per-column cache; the rest (long text, structures) render here, in
            # row order, so their stash entries are made in the same order as before.
            cells = [
                t if (t := ready[i]) is not None else self._cell(vals[i], c, full=full) for c, vals, ready in cells_of
            ]
            if folded:
                cells.append(f"×{dup_count[i]}")
            out.append(self.pad + " | ".join(cells).rstrip())
        if skipped:
            out.append(self.pad + self._elide_rows(skipped, shown_cols, dup_count))
        return out

    # -- notes ----------------------------------------------------------------------------------------------

    def _once(self, head: str, body: list[str]) -> list[str]:
        block = "\n".join(body)
        if len(block) > 200 and block in self.seen_notes:
            return [f"{head} as in table {self.seen_notes[block]} above ({len(body)} columns)"]
        self.seen_notes.setdefault(block, len(self.seen_notes) + 1)
        return [head, *body]

    def _mostly_constant(self, rest: list[str]) -> list[str]:
        """``archived=false`` on all but 3 of 300 rows: the exceptions by row identifier, not a column."""
        cols = self.cols
        n = cols.n
        ident = cols.ident(rest)
        if n < 20 or ident is None:
            return []
        out: list[str] = []
        for c in rest:
            if c == ident or cols.last[c] in IDENT_KEYS or cols.is_long(c):
                continue
            top, top_n = cols.counts(c).most_common(1)[0]
            if top_n == n or n - top_n > min(5, n // 20):
                continue
            vals = self.values[c]
            frozen = cols.frozen(c)
            main = vals[frozen.index(top)]
            others = [i for i, f in enumerate(frozen) if f != top]
            idents = self.values[ident]
            except_ = ", ".join(
                f"{ident} {scalar_text(idents[i])}: {self._cell(vals[i], c, full=False)}" for i in others
            )
            out.append(f"  {c}={self._cell(main, c, full=False)} except {except_}")
        return out

    def _note_value(self, v: Any, col: str) -> str:
        if isinstance(v, list):
            return ",".join(scalar_text(x) if is_scalar(x) else compact(x) for x in v)
        if isinstance(v, dict):
            return text_cell(self.ctx, compact(v), col, full=False)
        return text_cell(self.ctx, scalar_text(v), col, full=False)

    # -- rows -----------------------------------------------------------------------------------------------

    def _cell(self, v: Any, col: str, *, full: bool) -> str:
        if v is MISSING or v is None:
            return ""
        if isinstance(v, list) and all(is_scalar(x) for x in v):
            shown = ",".join(scalar_text(x) for x in v[:MAX_LIST_ITEMS])
            if len(v) > MAX_LIST_ITEMS:
                rest = v[MAX_LIST_ITEMS:]
                self.ctx.count("items", len(rest))
                shown += " " + self.ctx.stash(compact(rest), f"{len(rest)} more {col} items")
            return escape(shown)
        if isinstance(v, (list, dict)):
            return text_cell(self.ctx, compact(v), col, full=full)
        return text_cell(self.ctx, scalar_text(v), col, full=full)

    def _trouble(self, cols: list[str]) -> list[list[str]]:
        """Per row, the ``column=value`` reasons it looks like trouble (status words, error codes)."""
        trouble: list[list[str]] = [[] for _ in range(self.cols.n)]
        for c in cols:
            last = self.cols.last[c]
            if last not in _STATUS_KEYS and last not in _CODE_KEYS:
                continue
            verdicts: dict[str, bool] = {}  # the same status word on many rows is judged once
            for i, v in enumerate(self.values[c]):
                if isinstance(v, str):
                    hit = verdicts.get(v)
                    if hit is None:
                        hit = verdicts[v] = _TROUBLE_RE.search(v) is not None
                else:
                    hit = _is_trouble_number(last, v)
                if hit:
                    trouble[i].append(f"{c}={v}")
        return trouble

    def _notable(self, cols: list[str], trouble: list[list[str]]) -> list[str]:
        """Trouble rows, rare values of a categorical column and numeric outliers, grouped, for the header."""
        n = self.cols.n
        groups: dict[str, list[int]] = {}
        for i, reasons in enumerate(trouble):
            for reason in reasons:
                groups.setdefault(reason, []).append(i)
        if n >= 20:
            for c in cols:
                if self.cols.last[c] in ("number", "id", "title", "name", "key") or self.cols.is_long(c):
                    continue
                vals = self.values[c]
                counts = self.cols.counts(c)
                if 2 <= len(counts) <= 8 and counts.most_common(1)[0][1] >= n * 0.8:
                    rare = max(1, n // 50)
                    for i, (v, f) in enumerate(zip(vals, self.cols.frozen(c))):
                        if counts[f] <= rare and f"{c}={scalar_text(v)}" not in groups:
                            groups.setdefault(f"rare {c}={scalar_text(v)}", []).append(i)
                for i, why in _outliers(c, vals):
                    groups.setdefault(why, []).append(i)
        self.protected = {i for rows in groups.values() for i in rows}
        ident = self.cols.ident(cols)
        out: list[str] = []
        for why, rows in list(groups.items())[:10]:
            who = ", ".join(scalar_text(self.values[ident][i]) if ident else f"row {i + 1}" for i in rows[:8])
            more = f" +{len(rows) - 8}" if len(rows) > 8 else ""
            label = f"{ident} " if ident else ""
            out.append(f"{why} ({label}{who}{more})")
        return out

    def _sample(self, order: list[int], cols: list[str], trouble: list[list[str]]) -> set[int]:
        """Which distinct rows are shown: all of them unless the table is huge."""
        head = order[:2000]
        size = 3 * len(cols) * len(head)
        for c in cols:
            cost = self.cols.text_cost(c)
            size += sum(cost) if len(head) == len(cost) else sum([cost[i] for i in head])
        if len(order) > 2000:
            size = size * len(order) // 2000
        if size <= TABLE_BUDGET:
            return set(order)
        keep = set(order[:HEAD_ROWS]) | set(order[-TAIL_ROWS:])
        keep |= {i for i in order if trouble[i] or i in self.protected}
        if self.ctx.terms or self.ctx.symbols:
            scored = []
            columns = [self.values[c] for c in self.cols.names]
            for i in order:
                text = " ".join(plain(vals[i]) for vals in columns)
                score = self.ctx.relevance(text)
                if score > 0:
                    scored.append((-score, i))
            keep |= {i for _, i in sorted(scored)[:MAX_RELEVANT_ROWS]}
        return keep

    def _elide_rows(self, skipped: list[int], cols: list[str], dup_count: dict[int, int]) -> str:
        # The stash holds the rows as table lines: cheaper to read back than the JSON they came from.
        columns = [self.values[c] for c in cols]
        body = "\n".join(
            " | ".join(escape(plain(vals[i])) for vals in columns) + (f" | ×{dup_count[i]}" if dup_count[i] > 1 else "")
            for i in skipped
        )
        count = sum(dup_count[i] for i in skipped)
        self.ctx.count("rows", count)
        return self.ctx.stash(body, f"{count} rows elided (same columns)")


def _is_trouble_number(last: str, v: Any) -> bool:
    if not isinstance(v, int) or isinstance(v, bool):
        return False
    if last in ("status", "code", "status_code"):
        return v >= 400
    return last in ("exit_code", "returncode") and v != 0


def _outliers(col: str, vals: list[Any]) -> list[tuple[int, str]]:
    nums = [(i, float(v)) for i, v in enumerate(vals) if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if len(nums) < 10 or len(nums) < len(vals) * 0.9 or len({x for _, x in nums}) < 5:
        return []
    xs = sorted(x for _, x in nums)
    med = median(xs)
    mad = median(sorted(abs(x - med) for x in xs))
    if mad == 0:
        return []
    return [(i, f"{col} outlier {fmt_num(x)}") for i, x in nums if abs(x - med) / (1.4826 * mad) > 8][:5]
