"""One spelling per working directory: lexical, never resolving ``..`` (it may cross a symbolic link)."""

from __future__ import annotations

import pytest

from app.domain.directories import normalise


@pytest.mark.parametrize(
    ("given", "spelled"),
    [
        ("/work/app", "/work/app"),
        ("/work/app/", "/work/app"),
        ("/work//app/./", "/work/app"),
        ("/", "/"),
        ("//", "/"),
        ("/a/./b/../c/", "/a/b/../c"),
        ("repo/", "repo"),
        ("./repo", "repo"),
        (".", "."),
        ("~/code/", "~/code"),
        ("/with space/", "/with space"),
        ("C:\\repo\\", "C:\\repo"),
        ("C:\\\\repo\\.\\x", "C:\\repo\\x"),
        ("C:\\", "C:\\"),
        ("\\\\server\\share\\", "\\\\server\\share"),
        ("file:///work/app/", "file:///work/app"),
        ("https://github.com/org/repo/", "https://github.com/org/repo"),
    ],
)
def test_a_directory_has_one_spelling(given: str, spelled: str) -> None:
    assert normalise(given) == spelled
    assert normalise(spelled) == spelled  # a spelled directory stays as it is
