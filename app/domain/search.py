"""What a ``search_text`` match is, once for both backends (DESIGN §4.1: "the same matches on both backends").

A task matches when **every word of the search is a prefix of some word of its document** (title,
description and summary joined by spaces). Words are the maximal runs of letters (Unicode categories L*)
and decimal digits (Nd) in the text after Unicode lower-casing (``str.lower``: the full mapping, final
sigma included); anything else separates words (punctuation, ``_``, ``/``, ``.``, ``@``, marks such as a
combining accent, other numerals such as ``½``). A word counts by its first :data:`MAX_WORD` characters.
No stemming, no stop words, no accent folding.

So ``app/main.py`` has the words ``app``, ``main``, ``py``; ``3.14`` has ``3`` and ``14``;
``snake_case`` has ``snake`` and ``case``; ``ÜBER`` is found by ``über``; ``factoring`` does not find
``Refactoring`` (a prefix, not a substring).

SQLite runs :func:`matches` itself (a function registered on each connection, ``app.db.engine``).
PostgreSQL computes the same words in SQL, ``task_search_vector`` of migration 0004: ``lower`` and
``[[:alnum:]]`` under the ICU root collation ``und-x-icu`` (the Unicode case mapping and "letter or
decimal digit", whatever the database's locale), ``left(word, 255)``, as a ``tsvector`` whose lexemes are
exactly these words (``array_to_tsvector``: no parser, no dictionary); the search is a ``tsquery`` of
the words as quoted prefixes (:func:`tsquery`), which compares bytes.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

# 255 characters are at most 1020 bytes: under PostgreSQL's 2047-byte lexeme limit (a longer lexeme
# does not fit a tsvector entry), and 255 is also its regex engine's largest repetition count.
MAX_WORD = 255
# Python's \w is str.isalnum plus "_": letters, and every kind of digit or numeral. Runs of it without
# "_" are split further below where a character is a numeral that is not a decimal digit.
_ALNUM = re.compile(r"[^\W_]+")
_WORD_CATEGORIES = frozenset({"Lu", "Ll", "Lt", "Lm", "Lo", "Nd"})


def words(text: str) -> list[str]:
    """The words of ``text`` in order (repeats kept), lower-cased and cut to :data:`MAX_WORD`."""
    found: list[str] = []
    for run in _ALNUM.findall(text.lower()):
        if run.isascii():
            found.append(run[:MAX_WORD])
            continue
        # Non-ASCII runs may hold numerals that are no decimal digit (½, ², Ⅸ): they separate words.
        piece: list[str] = []
        for char in run:
            if unicodedata.category(char) in _WORD_CATEGORIES:
                piece.append(char)
            elif piece:
                found.append("".join(piece)[:MAX_WORD])
                piece = []
        if piece:
            found.append("".join(piece)[:MAX_WORD])
    return found


def query_words(search_text: str) -> list[str]:
    """The distinct words of a search, in order of first appearance."""
    return list(dict.fromkeys(words(search_text)))


def matches(document: str, search: Sequence[str]) -> bool:
    """Whether every word of ``search`` (from :func:`query_words`) is a prefix of a word of ``document``."""
    lowered = document.lower()
    # A prefix of a word of the document is a substring of its lower-cased text: most documents fail
    # this cheap test, and only the rest are split into words.
    if any(word not in lowered for word in search):
        return False
    if lowered.isascii():
        # ASCII only: a word begins wherever the character before is no letter or digit (splitting the
        # whole text with a regex costs several times more).
        return all(_starts_a_word(lowered, word) for word in search)
    spaced = " " + " ".join(words(document))
    return all(" " + word in spaced for word in search)


def _starts_a_word(lowered: str, word: str) -> bool:
    at = lowered.find(word)
    while at >= 0:
        if at == 0 or not lowered[at - 1].isalnum():
            return True
        at = lowered.find(word, at + 1)
    return False


def tsquery(search: Sequence[str]) -> str:
    """PostgreSQL's ``tsquery`` text for ``search``: every word as a quoted prefix, all required.

    Words hold only letters and digits, so no quote or backslash needs escaping; quoting keeps
    ``tsquery`` from reading any of them as an operator.
    """
    return " & ".join(f"'{word}':*" for word in search)
