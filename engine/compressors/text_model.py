"""Word-level prose compression with a local token-classification model (LLMLingua-2 style).

Where the extractive compressor keeps or drops whole sentences, a keep/drop classifier can thin every
sentence, which reads better at the same ratio. It is optional: torch and transformers are the ``ml`` extra,
the model is whatever local directory ``text_model`` names (never downloaded), and anything that goes wrong
while loading raises :class:`Skip`, so the router falls back to the extractive compressor.

Each word gets the mean keep-probability of its word pieces; the top ``text_keep_ratio`` of words stay, plus
every word the answer may hinge on (numbers, identifiers, the question's terms). Headings, tables and code
fences are never thinned. Because words go missing inside lines, no line range can stand for what was cut:
each thinned group of paragraphs is stashed whole and its marker follows the thinned text.

Models are cached per path behind a lock; they run in eval mode under ``no_grad``, one window at a time (no
padding, so a window's result never depends on its neighbours), which keeps the output a pure function of
the input.
"""

from __future__ import annotations

import importlib
import math
import re
import threading
import warnings
from typing import Any, ClassVar

from headroom.engine.compressors.base import Block, Context, Skip, looks_binary
from headroom.engine.compressors.text import FENCE_RE, MIN_CHARS

#: The model reads every token: beyond this the extractive compressor is the better trade.
MAX_MODEL_CHARS = 300_000
#: Paragraphs are thinned in groups of about this size, so one marker covers several short ones.
GROUP_CHARS = 600
#: Shorter groups stay whole: the marker would cost what thinning saves.
MIN_GROUP_CHARS = 200

_VERBATIM_RE = re.compile(r"^\s{0,3}(#{1,6}\s|\||[=\-~^*#]{3,}\s*$)|^(\t| {4})")
_WORD_RE = re.compile(r"\S+")
_KEEP_WORD_RE = re.compile(r"\d|\w_\w|\w\.\w|[a-z][A-Z]|[`/\\@#$]|^[-*+]$|^\d+[.)]$")
_PUNCT = "\"'`()[]{}<>,.;:!?*"

_LOCK = threading.Lock()
#: path -> (tokenizer, model), or the reason loading failed (not retried: loading is slow).
_MODELS: dict[str, tuple[Any, Any] | str] = {}


class ModelTextCompressor:
    """Thins prose word by word with a local keep/drop token classifier."""

    kind: ClassVar[str] = "text"

    def sniff(self, block: Block) -> bool:
        return len(block.text) >= MIN_CHARS and not looks_binary(block.text)

    def compress(self, block: Block, ctx: Context) -> str:
        path = ctx.config.text_model
        if not path:
            raise Skip("no text model configured")
        text = block.text
        if len(text) < MIN_CHARS:
            raise Skip(f"too short for prose compression ({len(text)} chars)")
        if len(text) > MAX_MODEL_CHARS:
            raise Skip(f"too large for the text model ({len(text)} chars)")
        if looks_binary(text):
            raise Skip("looks binary")
        tokenizer, model = load_model(path)
        lines = text.splitlines(keepends=True)
        groups, verbatim = _plan(lines)
        spans = [(i, m.start(), m.end()) for g in groups for i in g for m in _WORD_RE.finditer(lines[i])]
        if not spans:
            raise Skip("no prose to thin")
        words = [lines[i][a:b] for i, a, b in spans]
        try:
            probs = _keep_probabilities(tokenizer, model, words)
        except Exception as exc:  # a model that cannot run on this input must not break the request
            raise Skip(f"text model failed: {type(exc).__name__}") from exc
        keep = _choose(words, probs, ctx)
        kept_by_line: dict[int, list[str]] = {}
        for (i, _, _), word, k in zip(spans, words, keep):
            if k:
                kept_by_line.setdefault(i, []).append(word)
        out = _render(lines, groups, verbatim, kept_by_line, ctx)
        ctx.count("words", len(words) - sum(keep))
        if len(out) >= len(text) * 0.95:
            raise Skip("nothing worth thinning")
        return out


def load_model(path: str) -> tuple[Any, Any]:
    """The cached (tokenizer, model) for ``path``; :class:`Skip` when the libraries or the model fail."""
    with _LOCK:
        hit = _MODELS.get(path)
        if hit is None:
            hit = _MODELS[path] = _load(path)
    if isinstance(hit, str):
        raise Skip(hit)
    return hit


def _load(path: str) -> tuple[Any, Any] | str:
    try:
        importlib.import_module("torch")
        transformers = importlib.import_module("transformers")
    except ImportError as exc:
        return f"the text model needs torch and transformers ({exc.name} is missing)"
    # tqdm (a transformers dependency) starts a monitor thread with its first progress bar that outlives the
    # bar and the model; the daemon shows no bars, so there is nothing for it to watch.
    importlib.import_module("tqdm").tqdm.monitor_interval = 0
    try:
        with warnings.catch_warnings():  # a library deprecation notice is no reason to lose the model
            warnings.simplefilter("ignore")
            tokenizer = transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
            model = transformers.AutoModelForTokenClassification.from_pretrained(path, local_files_only=True)
    except Exception as exc:
        return f"text model {path!r} failed to load: {type(exc).__name__}: {str(exc)[:200]}"
    if not getattr(tokenizer, "is_fast", False):
        return f"text model {path!r} needs a fast tokenizer (word alignment)"
    model.eval()
    return tokenizer, model


# -- planning: what may be thinned ---------------------------------------------------------------------


def _plan(lines: list[str]) -> tuple[list[list[int]], set[int]]:
    """Groups of prose line indices (paragraphs merged up to ``GROUP_CHARS``) and the lines kept verbatim."""
    verbatim: set[int] = set()
    paragraphs: list[list[int]] = []
    current: list[int] = []
    in_fence = ""
    for i, line in enumerate(lines):
        fence = FENCE_RE.match(line)
        if in_fence or fence or not line.strip() or _VERBATIM_RE.match(line):
            if fence:
                in_fence = "" if in_fence and line.lstrip().startswith(in_fence) else in_fence or fence.group(1)
            if line.strip():
                verbatim.add(i)
            if current:
                paragraphs.append(current)
                current = []
            continue
        current.append(i)
    if current:
        paragraphs.append(current)
    groups: list[list[int]] = []
    size = 0
    for para in paragraphs:
        chars = sum(len(lines[i]) for i in para)
        # only blank lines between: a heading or a fence in between ends the group
        if groups and size < GROUP_CHARS and all(not lines[j].strip() for j in range(groups[-1][-1] + 1, para[0])):
            groups[-1].extend(para)
            size += chars
        else:
            groups.append(list(para))
            size = chars
    return groups, verbatim


# -- scoring -------------------------------------------------------------------------------------------


def _keep_probabilities(tokenizer: Any, model: Any, words: list[str]) -> list[float]:
    """Mean keep-probability of each word's pieces; windows of whole words that fit the model."""
    torch = importlib.import_module("torch")
    limit = min(512, int(getattr(model.config, "max_position_embeddings", 512))) - 2
    limit -= int(tokenizer.num_special_tokens_to_add())
    pieces = [0] * len(words)
    for w in tokenizer(words, is_split_into_words=True, add_special_tokens=False).word_ids():
        if w is not None:
            pieces[w] += 1
    keep_label = _keep_label(model)
    out = [1.0] * len(words)  # a word without pieces is unknown to the model: keep rather than guess
    start = 0
    with torch.no_grad():
        while start < len(words):
            end, used = start, 0
            while end < len(words) and (end == start or used + pieces[end] <= limit):
                used += pieces[end]
                end += 1
            enc = tokenizer(
                words[start:end], is_split_into_words=True, truncation=True, max_length=limit + 2, return_tensors="pt"
            )
            logits = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits[0]
            probs = torch.softmax(logits.float(), dim=-1)[:, keep_label].tolist()
            sums = [0.0] * (end - start)
            counts = [0] * (end - start)
            for p, w in zip(probs, enc.word_ids()):
                if w is not None:
                    sums[w] += p
                    counts[w] += 1
            for k in range(end - start):
                if counts[k]:
                    out[start + k] = sums[k] / counts[k]
            start = end
    return out


def _keep_label(model: Any) -> int:
    labels: dict[int, str] = dict(getattr(model.config, "id2label", {}) or {})
    for idx, name in sorted(labels.items()):
        if str(name).lower() in ("keep", "preserve", "retain"):
            return int(idx)
    if int(getattr(model.config, "num_labels", 2)) < 2:
        raise Skip("the text model needs two labels (drop, keep)")
    return 1  # LLMLingua-2 convention: label 1 is "keep"


def _choose(words: list[str], probs: list[float], ctx: Context) -> list[bool]:
    keep = [bool(_KEEP_WORD_RE.search(w)) or w.strip(_PUNCT).lower() in ctx.terms for w in words]
    if ctx.symbols:
        keep = [k or any(s in w for s in ctx.symbols) for k, w in zip(keep, words)]
    target = math.ceil(min(max(ctx.config.text_keep_ratio, 0.05), 0.95) * len(words))
    room = target - sum(keep)
    if room > 0:
        order = sorted((i for i, k in enumerate(keep) if not k), key=lambda i: (-probs[i], i))
        for i in order[:room]:
            keep[i] = True
    return keep


# -- output --------------------------------------------------------------------------------------------


def _render(
    lines: list[str], groups: list[list[int]], verbatim: set[int], kept: dict[int, list[str]], ctx: Context
) -> str:
    group_of = {i: g for g, group in enumerate(groups) for i in group}
    out: list[str] = []
    i = 0
    while i < len(lines):
        g = group_of.get(i)
        if g is None:
            out.append(lines[i])
            i += 1
            continue
        group = groups[g]
        first, last = group[0], group[-1]
        original = "".join(lines[first : last + 1])
        if len(original) < MIN_GROUP_CHARS:
            out.append(original)
            i = last + 1
            continue
        thinned: list[str] = []
        for j in range(first, last + 1):
            line = lines[j]
            if j in verbatim or j not in group_of:
                thinned.append(line)
                continue
            body = line.rstrip("\r\n")
            indent = body[: len(body) - len(body.lstrip())]
            if kept.get(j):
                thinned.append(indent + " ".join(kept[j]) + line[len(body) :])
        text = "".join(thinned)
        if not text.endswith("\n"):
            text += "\n"
        n = len(group)
        what = f"original of {'these' if n != 1 else 'this'} {n} line{'s' if n != 1 else ''}"
        marker = ctx.stash(original, what)
        ending = lines[last][len(lines[last].rstrip("\r\n")) :]
        out.append(f"{text}{marker}{ending}")
        i = last + 1
    return "".join(out)
