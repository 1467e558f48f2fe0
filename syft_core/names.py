"""One policy for the characters a submitter or a job may put in names, and how text is shown.

A reviewer must see exactly what runs, and a name recorded must be the name on disk. Characters
that a terminal does not show, shows as something else, or that reorder what is around them are
therefore refused in file names (submissions and outputs alike) and escaped wherever text from a
submitter or a job is printed:

- C0 and C1 controls (NUL, ESC, NEL U+0085 ...) and DEL;
- line and paragraph separators (U+2028, U+2029);
- format characters (Unicode category Cf: bidi embeddings, overrides and isolates, zero-width
  spaces and joiners, the byte-order mark, soft hyphen, tag characters U+E0000-U+E007F);
- other default-ignorable code points (Hangul fillers, variation selectors ...);
- surrogates (a byte that is not UTF-8, as os.fsdecode escapes it), private-use and unassigned
  code points, and every space but U+0020 (a look-alike of it).

Look-alike letters (a Cyrillic `а` for a Latin `a`) are valid text in general, so they are not
refused; `mixed_script_words` finds words that mix scripts, the classic sign of a spoofed name.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator

# Default_Ignorable_Code_Point (Unicode DerivedCoreProperties) outside category Cf, which is
# refused as a whole.
_IGNORABLE_RANGES = (
    (0x034F, 0x034F),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),
    (0xFFA0, 0xFFA0),
    (0xFFF0, 0xFFF8),
    (0xE0000, 0xE0FFF),
)
_REFUSED_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}
# Text shown to the owner keeps its tabs and newlines; everything else refused is escaped.
_KEPT_IN_TEXT = frozenset("\t\n")
_WORD = re.compile(r"[^\W\d_]+")


def hidden_char(c: str) -> bool:
    """Whether `c` is invisible, misleading or reordering when printed (see the module doc)."""
    code = ord(c)
    if code < 0x80:
        return code < 0x20 or code == 0x7F
    category = unicodedata.category(c)
    if category in _REFUSED_CATEGORIES or (category == "Zs" and c != " "):
        return True
    return any(low <= code <= high for low, high in _IGNORABLE_RANGES)


def _escape(c: str) -> str:
    code = ord(c)
    if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte, surrogate-escaped by os.fsdecode
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def visible(text: str, *, keep_newlines: bool = False) -> str:
    """`text` as it can be printed unambiguously: each hidden character written as an escape
    (`\\x1b`, `\\u202e`, `\\U000e0020`) and backslashes doubled, so an escape in the text cannot
    pass for one of ours. In text that is not in NFC form, combining marks are escaped too, so a
    decomposed look-alike (`e` + U+0301) does not pass for the composed name. With
    `keep_newlines`, tabs and newlines stay (for showing files)."""
    decomposed = not unicodedata.is_normalized("NFC", text)
    out: list[str] = []
    for c in text:
        if c == "\\":
            out.append("\\\\")
        elif (hidden_char(c) and not (keep_newlines and c in _KEPT_IN_TEXT)) or (
            decomposed and unicodedata.category(c).startswith("M")
        ):
            out.append(_escape(c))
        else:
            out.append(c)
    return "".join(out)


def hidden_chars(text: str, *, keep_newlines: bool = False) -> Iterator[str]:
    """The hidden characters of `text`, each as `U+XXXX NAME`, in order of first appearance."""
    seen: set[str] = set()
    for c in text:
        if c in seen or (keep_newlines and c in _KEPT_IN_TEXT) or not hidden_char(c):
            continue
        seen.add(c)
        yield describe_char(c)


_CATEGORY_NAMES = {"Cc": "a control character", "Cs": "an undecodable byte", "Co": "private use"}


def describe_char(c: str) -> str:
    """`U+202E RIGHT-TO-LEFT OVERRIDE`; unnamed ones by kind (`U+001B a control character`)."""
    name = unicodedata.name(c, "") or _CATEGORY_NAMES.get(unicodedata.category(c), "unassigned")
    return f"U+{ord(c):04X} {name}"


def _script(c: str) -> str:
    """The script of a letter, from its Unicode name (LATIN, CYRILLIC, GREEK ...)."""
    name = unicodedata.name(c, "")
    return name.split(" ", 1)[0] if name else "UNKNOWN"


def mixed_script_words(text: str) -> list[str]:
    """Words whose letters come from more than one script (`pаndas` with a Cyrillic `а`)."""
    found: list[str] = []
    for word in _WORD.findall(text):
        if word.isascii():
            continue
        scripts = {_script(c) for c in word if not c.isascii() or c.isalpha()}
        if len(scripts) > 1 and word not in found:
            found.append(word)
    return found


def name_problem(name: str) -> str | None:
    """Why one file or folder name cannot be accepted, or None. Not about `/` or `..`: paths
    are syft_core.paths' concern."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "the name is not valid UTF-8"
    bad = list(hidden_chars(name))
    if bad:
        return "the name has hidden or control characters (" + ", ".join(bad) + ")"
    if not unicodedata.is_normalized("NFC", name):
        return "the name is not in NFC unicode form"
    return None
