"""Prose, listing and HTML compressors, and the optional token-classification model path."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from compress_helpers import run

from headroom.engine.ccr import MemoryCCRStore, find_refs, put_all, retrieve
from headroom.engine.compressors import text_model
from headroom.engine.compressors.base import Block, Context, Skip
from headroom.engine.compressors.html import HtmlCompressor
from headroom.engine.compressors.text import TextCompressor
from headroom.engine.compressors.text_model import ModelTextCompressor
from headroom.engine.config import EngineConfig

_TOPICS = ["storage", "network", "scheduler", "parser", "renderer", "cache", "logger", "importer"]


def _prose(paragraphs: int = 30, seed: int = 7) -> str:
    rng = random.Random(seed)
    out: list[str] = []
    for p in range(paragraphs):
        topic = _TOPICS[p % len(_TOPICS)]
        sentences = [
            f"The {topic} layer was reviewed during iteration {p} of the project.",
            f"Engineers discussed how the {topic} behaves under ordinary load and agreed it looked fine.",
            "Nothing in this part of the discussion changed the overall plan in any noticeable way.",
            f"A follow-up note about the {topic} mentions {rng.choice(['minor', 'small', 'cosmetic'])} cleanups.",
        ]
        out.append(" ".join(sentences))
    return "\n\n".join(out) + "\n"


def _redeem(out: str, ctx: Context) -> str:
    store = MemoryCCRStore()
    put_all(store, ctx.entries)
    return "\n".join(retrieve(store, str(ref)) for ref in find_refs(out))


# -- extractive text -----------------------------------------------------------------------------------


def test_prose_keeps_first_last_and_relevant_sentences() -> None:
    text = _prose()
    needle = "The kestrel migration failed with error code 4471 after the quota was exceeded."
    lines = text.split("\n\n")
    lines[17] = lines[17].replace("Nothing in this part", needle + " Nothing in this part")
    text = "\n\n".join(lines)
    out, ctx = run(TextCompressor(), text, question="Why did the kestrel migration fail?")
    assert needle in out
    assert out.startswith(text.split(". ")[0])
    assert text.rstrip().rsplit(". ", 1)[-1] in out
    assert len(out) < len(text) * 0.7
    assert ctx.dropped


def test_ratio_is_respected() -> None:
    text = _prose(60)
    for ratio in (0.3, 0.6):
        out, _ = run(TextCompressor(), text, config=EngineConfig(text_keep_ratio=ratio))
        assert len(out) < len(text) * (ratio + 0.2)
    small, _ = run(TextCompressor(), text, config=EngineConfig(text_keep_ratio=0.3))
    large, _ = run(TextCompressor(), text, config=EngineConfig(text_keep_ratio=0.6))
    assert len(small) < len(large)


def test_markdown_structure_is_kept() -> None:
    body = "\n".join(f"Line {i} of the section talks about nothing in particular, at some length." for i in range(12))
    code = "```python\ndef handler(event):\n    return event['id']\n```"
    text = (
        f"# Title\n\nIntro paragraph.\n\n## Install\n\n{body}\n\n{code}\n\n## Usage\n\n"
        f"- first item describes the usage\n- second item\n\n{body}\n\n### Notes\n\nThe end.\n"
    )
    out, _ = run(TextCompressor(), text)
    for heading in ("# Title", "## Install", "## Usage", "### Notes"):
        assert heading + "\n" in out
    # a fence is kept whole or elided whole, never cut in half
    assert (code in out) or ("def handler" not in out)
    assert out.rstrip().endswith("The end.")


def test_marker_lines_redeem_exactly() -> None:
    text = _prose(40)
    out, ctx = run(TextCompressor(), text)
    assert "lines elided; retrieve hr:" in out or "sentences elided; retrieve hr:" in out
    assert _redeem(out, ctx)


def test_repeated_lines_collapse_with_a_count() -> None:
    lines = ["Starting job runner v2.3.1", "Config loaded from /etc/runner.toml"]
    lines += [f"heartbeat ok seq={i} latency=12ms" for i in range(300)]
    lines += ["FATAL: disk /dev/sda1 is full", "runner stopped"]
    text = "\n".join(lines) + "\n"
    out, ctx = run(TextCompressor(), text)
    assert "similar lines elided" in out
    assert "FATAL: disk /dev/sda1 is full" in out
    assert out.startswith("Starting job runner v2.3.1")
    assert "runner stopped" in out
    assert ctx.dropped.get("similar lines", 0) > 250


def test_listing_keeps_head_tail_and_relevant_paths() -> None:
    paths = [f"src/pkg{i // 40}/module_{i:04d}.py" for i in range(800)]
    paths[500] = "src/pkg12/payment_gateway.py"
    text = "\n".join(paths) + "\n"
    out, _ = run(TextCompressor(), text, question="where is the payment gateway?")
    assert paths[0] in out and paths[-1] in out
    assert "src/pkg12/payment_gateway.py" in out
    assert len(out) < len(text) * 0.6


def test_long_line_blob_is_cut_into_pieces() -> None:
    blob = "{" + ", ".join(f'"key_{i}": "value number {i}"' for i in range(3000)) + "}"
    out, ctx = run(TextCompressor(), blob)
    assert len(out) < len(blob)
    assert _redeem(out, ctx)


def test_short_text_is_skipped() -> None:
    with pytest.raises(Skip):
        run(TextCompressor(), "A short note.\nNothing to compress here.\n")


def test_binary_junk_is_skipped_or_valid() -> None:
    rng = random.Random(3)
    junk = "".join(chr(rng.randrange(0, 256)) for _ in range(20000))
    assert not TextCompressor().sniff(Block(junk))
    with pytest.raises(Skip):
        run(TextCompressor(), junk)


def test_deterministic() -> None:
    text = _prose(50)
    outs = {run(TextCompressor(), text, question="scheduler iteration 9")[0] for _ in range(3)}
    assert len(outs) == 1


def test_five_megabytes_completes() -> None:
    text = _prose(200) * 75 + "\n".join(f"/var/data/file_{i}.bin" for i in range(20000))
    assert len(text) > 5_000_000
    out, _ = run(TextCompressor(), text)
    assert len(out) < len(text) / 10


# -- HTML ----------------------------------------------------------------------------------------------

_PAGE = """<!DOCTYPE html>
<html><head><title>Widget API guide</title>
<style>body { color: red; } .nav { display: none; }</style>
<script>window.tracking = function() { return 'secret-tracker'; };</script>
</head><body>
<nav><a href="/">Home</a> <a href="/about">About us</a></nav>
<h1>Widget API</h1>
<p>The widget endpoint returns a JSON document describing one widget. Use the
<code>widget_id</code> parameter to select it, see <a href="/docs/ids">identifier rules</a>.</p>
<h2>Limits</h2>
<p>Clients may send at most 120 requests per minute before receiving HTTP 429.</p>
<table><tr><th>field</th><th>type</th></tr><tr><td>id</td><td>int</td></tr><tr><td>name</td><td>str</td></tr></table>
<pre>curl https://example.test/widgets/42
  --header 'Accept: application/json'</pre>
<svg><path d="M0 0 L10 10"/></svg>
<footer>Copyright nobody, all rights reserved.</footer>
</body></html>
"""


def test_html_strips_noise_and_keeps_content() -> None:
    assert HtmlCompressor().sniff(Block(_PAGE))
    out, ctx = run(HtmlCompressor(), _PAGE)
    assert "original HTML; retrieve hr:" in out.splitlines()[0]
    for kept in ("Widget API guide", "# Widget API", "## Limits", "120 requests per minute", "`widget_id`"):
        assert kept in out
    assert "[identifier rules](/docs/ids)" in out
    assert "| id | int |" in out
    assert "curl https://example.test/widgets/42\n  --header 'Accept: application/json'" in out
    for dropped in ("secret-tracker", "color: red", "About us", "Copyright", "M0 0"):
        assert dropped not in out
    assert _redeem(out, ctx).startswith(_PAGE)


def test_large_html_is_compressed_further() -> None:
    body = "".join(f"<div class='card'><h3>Item {i}</h3><p>{_prose(1, i)}</p></div>" for i in range(200))
    page = f"<html><head><title>Catalog</title></head><body>{body}</body></html>"
    out, ctx = run(HtmlCompressor(), page)
    assert len(out) < len(page) / 4
    assert "Item 0" in out
    assert ctx.dropped


def test_html_sniff_rejects_prose_and_code() -> None:
    assert not HtmlCompressor().sniff(Block(_prose(5)))
    assert not HtmlCompressor().sniff(Block("if (a < b && c > d) { return x; }\n" * 40))


# -- token-classification model ------------------------------------------------------------------------


def test_missing_model_path_skips(tmp_path: Path) -> None:
    config = EngineConfig(text_model=str(tmp_path / "no-such-model"))
    with pytest.raises(Skip):
        run(ModelTextCompressor(), _prose(), config=config)


def test_broken_model_dir_skips(tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    with pytest.raises(Skip):
        run(ModelTextCompressor(), _prose(), config=EngineConfig(text_model=str(broken)))


def test_no_model_configured_skips() -> None:
    with pytest.raises(Skip):
        run(ModelTextCompressor(), _prose())


def _tiny_model(path: Path) -> None:
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("tqdm").tqdm.monitor_interval = 0  # saving opens a progress bar: no monitor thread left
    words = sorted(set(_prose(8).replace(".", " ").lower().split()))
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words, ".", ",", *"0123456789", "##s", "##ed"]
    path.mkdir()
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = transformers.BertTokenizerFast(vocab_file=str(path / "vocab.txt"))
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=37,
        num_labels=2,
        max_position_embeddings=64,
    )
    model = transformers.BertForTokenClassification(config)
    tokenizer.save_pretrained(str(path))
    model.save_pretrained(str(path))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_tiny_model_thins_prose(tmp_path: Path) -> None:
    model_dir = tmp_path / "tiny"
    _tiny_model(model_dir)
    text = "# Report\n\n" + _prose(12) + "\n```\ncode stays 1234\n```\n"
    config = EngineConfig(text_model=str(model_dir), text_keep_ratio=0.5)
    out, ctx = run(ModelTextCompressor(), text, config=config)
    assert len(out) < len(text)
    assert out.startswith("# Report\n")
    assert "```\ncode stays 1234\n```" in out
    kept_words = out.split()
    for p in range(12):  # numbers always stay
        assert str(p) in kept_words
    assert "retrieve hr:" in out and ctx.dropped["words"] > 0
    # the stashed originals together give every paragraph back
    redeemed = _redeem(out, ctx)
    for para in _prose(12).split("\n\n"):
        assert para.strip() in redeemed
    again, _ = run(ModelTextCompressor(), text, config=config)
    assert again == out
    text_model._MODELS.pop(str(model_dir), None)  # a fresh load gives the same answer
    reloaded, _ = run(ModelTextCompressor(), text, config=config)
    assert reloaded == out
