"""One spelling per working directory, so agents that name their project slightly differently share its
session (DESIGN §4.3: initialize_session resumes *the* active session of the working directory).

``/work/app``, ``/work/app/`` and ``/work//app/.`` are one directory to every agent and every shell, but
they were three sessions here: the second agent to start planned into a graph nobody else saw. The rule
is lexical and safe for any path: repeated separators and ``.`` segments go, a trailing separator goes
(the root keeps its own), and ``..`` stays, since it may cross a symbolic link. A path written with
backslashes and no slash (Windows) is treated the same way with ``\\`` as its separator; its drive root
(``C:\\``) and a UNC prefix (``\\\\server``) are kept; a URL keeps its ``scheme://``. A path that would become
empty is kept as given.
"""

from __future__ import annotations


def normalise(path: str) -> str:
    """``path`` in its one spelling (see the module's docstring); a URL's part after ``://`` likewise."""
    scheme, marker, location = path.partition("://")
    if marker and location:
        return scheme + marker + _normalise_path(location)
    return _normalise_path(path)


def _normalise_path(path: str) -> str:
    sep = "\\" if "\\" in path and "/" not in path else "/"
    lead = ""
    rest = path
    if sep == "\\" and rest.startswith("\\\\"):
        lead, rest = "\\\\", rest[2:]  # a UNC path: \\server\share
    elif rest.startswith(sep):
        lead, rest = sep, rest.lstrip(sep)
    parts = [part for part in rest.split(sep) if part not in ("", ".")]
    if not parts:
        return lead or path
    body = sep.join(parts)
    if sep == "\\" and not lead and len(parts) == 1 and parts[0].endswith(":"):
        return body + sep  # a drive's root: C:\ (C: alone means that drive's current directory)
    return lead + body
