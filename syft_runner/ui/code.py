"""Text a submitter wrote as HTML: escaped, with every hidden character shown; code highlighted.

The terminal's `show` writes hidden characters as `\\u202e` escapes and doubles backslashes so the
two cannot be confused. A page can do better: each hidden character (syft_core.names) becomes a
marked badge naming its code point, an element no submitted text can produce, so the code keeps
its own backslashes and still nothing is hidden or reordered. Pygments only chooses colours: it
lexes a copy with every hidden character replaced by one placeholder character (so a carriage
return or a byte-order mark cannot be normalised away), and the characters shown are taken from
the original text, position by position.
"""

from __future__ import annotations

import html
import unicodedata
from pathlib import PurePosixPath

from markupsafe import Markup
from pygments import lex
from pygments.formatters import HtmlFormatter
from pygments.lexer import Lexer
from pygments.lexers import TextLexer, get_lexer_for_filename
from pygments.token import STANDARD_TYPES, Token, _TokenType
from pygments.util import ClassNotFound

from syft_core.names import describe_char, hidden_char

CODE_CSS_SCOPE = ".hl"
_PLACEHOLDER = "\ufffd"


def code_css() -> str:
    """The colours of the highlighted code, scoped to CODE_CSS_SCOPE."""
    formatter = HtmlFormatter(style="default")
    return str(formatter.get_style_defs(CODE_CSS_SCOPE))  # type: ignore[no-untyped-call]


def _lexer(relpath: str) -> Lexer:
    """The lexer for the file's name, told to keep the text as it is (no stripped newlines)."""
    try:
        lexer: Lexer = get_lexer_for_filename(
            PurePosixPath(relpath).name, None, stripnl=False, ensurenl=False
        )
    except ClassNotFound:
        lexer = TextLexer(stripnl=False, ensurenl=False)
    return lexer


def _marked(c: str, decomposed: bool) -> bool:
    """Whether `c` is shown as a badge: hidden characters, and combining marks in text that is not
    NFC (a decomposed look-alike), as syft_core.names.visible escapes them."""
    if c in "\t\n":
        return False
    return hidden_char(c) or (decomposed and unicodedata.category(c).startswith("M"))


def _escaped(text: str, decomposed: bool) -> str:
    out: list[str] = []
    for c in text:
        if _marked(c, decomposed):
            name = html.escape(describe_char(c))
            out.append(f'<mark class="hidden" title="{name}">{name.split(" ", 1)[0]}</mark>')
        else:
            out.append(html.escape(c))
    return "".join(out)


def marked_text(text: str) -> Markup:
    """Plain text as HTML: escaped, each hidden character a badge (see highlighted_lines)."""
    return Markup(_escaped(text, not unicodedata.is_normalized("NFC", text)))


def _css_class(kind: _TokenType) -> str:
    found: _TokenType | None = kind
    while found is not None and found not in STANDARD_TYPES:
        found = found.parent
    return "" if found is None else STANDARD_TYPES[found]


def highlighted_lines(relpath: str, text: str) -> list[Markup]:
    """`text` as HTML, one item per line (only \\n ends a line, as for bash and python)."""
    decomposed = not unicodedata.is_normalized("NFC", text)
    lexable = "".join(_PLACEHOLDER if _marked(c, decomposed) else c for c in text)
    tokens = list(lex(lexable, _lexer(relpath)))
    if sum(len(value) for _, value in tokens) != len(text):
        tokens = [(Token.Text, lexable)]  # a lexer that changed the text: no colours, same text
    lines: list[list[str]] = [[]]
    position = 0
    for kind, value in tokens:
        original = text[position : position + len(value)]
        position += len(value)
        css = _css_class(kind)
        for index, part in enumerate(original.split("\n")):
            if index:
                lines.append([])
            if part:
                escaped = _escaped(part, decomposed)
                lines[-1].append(f'<span class="{css}">{escaped}</span>' if css else escaped)
    if len(lines) > 1 and not lines[-1]:
        lines.pop()  # the newline that ends the last line starts no line of its own
    return [Markup("".join(parts)) for parts in lines]
