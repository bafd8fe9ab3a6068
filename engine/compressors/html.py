"""HTML pages (web fetch results) turned into the text a reader sees, then compressed as prose.

Most of a fetched page is markup, scripts, styles, inline SVG and navigation; the model needs the title,
headings, paragraphs, link texts, tables and code. The page is read with the stdlib parser (lenient, no
dependency) into markdown-like text: headings as ``#`` lines, list items as ``-``, table rows as
``| a | b |``, ``pre`` blocks fenced verbatim, links as ``[text](href)`` when the address is short. The
converted lines are not lines of the original, so the output starts with a marker for the whole original
page, and when the text is still long, :func:`compress_prose` cuts it with every dropped run stashed.
"""

from __future__ import annotations

import contextlib
import re
from html.parser import HTMLParser
from typing import ClassVar

from headroom.engine.compressors.base import Block, Context, Skip
from headroom.engine.compressors.text import MIN_CHARS, compress_prose

#: Converted text shorter than this is short enough to keep whole.
PROSE_AFTER_CHARS = 3000
MAX_HREF = 80

_SKIP_TAGS = frozenset(
    {"script", "style", "svg", "nav", "footer", "head", "noscript", "template", "iframe", "canvas", "form"}
)
_SKIP_TAGS |= {"aside", "button", "select", "object", "math"}
_BLOCK_TAGS = frozenset(
    {"p", "div", "section", "article", "main", "header", "blockquote", "dl", "dt", "dd", "ul", "ol", "table"}
)
_BLOCK_TAGS |= {"figure", "figcaption", "br", "hr", "tbody", "thead", "details", "summary", "caption", "body"}
_HEADINGS = {f"h{i}": i for i in range(1, 7)}
_VOID = frozenset({"br", "hr", "img", "input", "meta", "link", "area", "base", "col", "embed", "source", "wbr"})
_WS_RE = re.compile(r"\s+")
_HTML_TAG_RE = re.compile(
    r"</?(?:html|body|head|div|span|p|a|li|ul|ol|table|tr|td|th|script|style|meta|link|h[1-6]|img|section|"
    r"article|nav|footer|header|main|br|form|input|button)\b",
    re.IGNORECASE,
)
_ANY_TAG_RE = re.compile(r"<[^<>]{0,500}>")


class HtmlCompressor:
    """Reader's text of an HTML page; the whole original stays one retrieve away."""

    kind: ClassVar[str] = "html"

    def sniff(self, block: Block) -> bool:
        head = block.text[:4096].lstrip("\ufeff \t\r\n").lower()
        if head.startswith(("<!doctype html", "<html")):
            return True
        sample = block.text[:8192]
        if len(sample) < MIN_CHARS or len(_HTML_TAG_RE.findall(sample)) < 15:
            return False
        markup = sum(len(m) for m in _ANY_TAG_RE.findall(sample))
        return markup * 10 >= len(sample) * 3

    def compress(self, block: Block, ctx: Context) -> str:
        if len(block.text) < MIN_CHARS:
            raise Skip(f"too short to convert ({len(block.text)} chars)")
        parser = _Reader()
        try:
            parser.feed(block.text)
            parser.close()
        except Exception as exc:  # the stdlib parser is lenient, but a malformed page must not break a request
            raise Skip(f"HTML parser failed: {type(exc).__name__}") from exc
        text = parser.text()
        if len(text) > PROSE_AFTER_CHARS:
            with contextlib.suppress(Skip):  # short or uniform text: the converted page is the result
                text = compress_prose(text, ctx, addressable=False)
        out = f"{ctx.whole_marker('original HTML')}\n{text}\n"
        if len(out) >= len(block.text):
            raise Skip("converted page is not smaller than the HTML")
        return out


class _Reader(HTMLParser):
    """Collects visible text as markdown-ish lines; everything under a skipped tag is ignored."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self.title: list[str] = []
        self._buf: list[str] = []
        self._prefix = ""
        self._skip: list[str] = []
        self._in_title = False
        self._pre = 0
        self._pre_buf: list[str] = []
        self._lists = 0
        self._cells: list[str] | None = None
        self._cell_start = 0
        self._link: tuple[int, str] | None = None

    def text(self) -> str:
        title = _WS_RE.sub(" ", "".join(self.title)).strip()
        self._flush()
        out: list[str] = [f"Title: {title}", ""] if title else []
        for line in self.lines:
            if line or (out and out[-1]):
                out.append(line)
        return "\n".join(out).strip("\n")

    # -- structure ---------------------------------------------------------------------------------------

    def _flush(self) -> None:
        body = _WS_RE.sub(" ", "".join(self._buf)).strip()
        self._buf = []
        if body:
            self.lines.append(self._prefix + body)
        self._prefix = ""

    def _block_break(self) -> None:
        self._flush()
        if self.lines and self.lines[-1]:
            self.lines.append("")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
            return
        if self._skip:
            if tag not in _VOID:
                self._skip.append(tag)
            return
        if tag in _SKIP_TAGS:
            self._skip.append(tag)
            return
        if self._pre:
            return
        if tag in _HEADINGS:
            self._block_break()
            self._prefix = "#" * _HEADINGS[tag] + " "
        elif tag == "li":
            self._flush()
            self._prefix = "  " * max(self._lists - 1, 0) + "- "
        elif tag in ("ul", "ol"):
            self._flush()
            self._lists += 1
        elif tag == "pre":
            self._block_break()
            self._pre = 1
            self._pre_buf = []
        elif tag == "tr":
            self._flush()
            self._cells = []
        elif tag in ("td", "th"):
            self._cell_start = len(self._buf)
        elif tag == "code":
            self._buf.append("`")
        elif tag == "a":
            href = dict(attrs).get("href") or ""
            self._link = (len(self._buf), href)
        elif tag == "img":
            alt = (dict(attrs).get("alt") or "").strip()
            if alt:
                self._buf.append(f" [image: {alt}] ")
        elif tag in _BLOCK_TAGS:
            if self._cells is not None:  # a paragraph inside a cell stays in the cell
                self._buf.append(" ")
            elif tag in ("p", "table", "blockquote"):
                self._block_break()
            else:
                self._flush()

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
            return
        if self._skip:
            if tag in self._skip:
                while self._skip and self._skip.pop() != tag:
                    pass
            return
        if tag == "pre" and self._pre:
            self._pre = 0
            body = "".join(self._pre_buf).strip("\n")
            self.lines.extend(["```", *body.splitlines(), "```", ""])
        elif self._pre:
            return
        elif tag in _HEADINGS:
            self._flush()
            self.lines.append("")
        elif tag in ("ul", "ol"):
            self._flush()
            self._lists = max(self._lists - 1, 0)
        elif tag in ("td", "th") and self._cells is not None:
            self._cells.append(_WS_RE.sub(" ", "".join(self._buf[self._cell_start :])).strip())
            del self._buf[self._cell_start :]
        elif tag == "tr" and self._cells is not None:
            if any(self._cells):
                self.lines.append("| " + " | ".join(self._cells) + " |")
            self._cells = None
        elif tag == "code":
            self._buf.append("`")
        elif tag == "a" and self._link is not None:
            start, href = self._link
            self._link = None
            label = _WS_RE.sub(" ", "".join(self._buf[start:])).strip()
            if label and 0 < len(href) <= MAX_HREF and not href.startswith(("#", "javascript:")) and href != label:
                del self._buf[start:]
                self._buf.append(f"[{label}]({href})")
        elif (tag in _BLOCK_TAGS or tag == "li") and self._cells is None:
            self._flush()

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title.append(data)
        elif self._skip:
            return
        elif self._pre:
            self._pre_buf.append(data)
        else:
            self._buf.append(data)
