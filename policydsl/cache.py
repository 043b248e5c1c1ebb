"""What is kept between runs, so that an unchanged policy is not parsed again: each policy file's AST and
Lark's parse tables, in a folder only this user can write to.

Parsing a policy takes about 50 ms, of a start-up of about 150 ms; loading its AST from here takes under
1 ms. A file is found by a hash of its text, its name and the code that parses it (grammar, syntax and
AST classes), so an edited policy or a new engine version is parsed afresh. Loading is restricted to the
AST's own classes, dates and fractions: a planted file cannot run code, it is only ignored. Set
``POLICYDSL_CACHE=0`` to keep nothing, ``POLICYDSL_CACHE_DIR`` to choose the folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import pickle
import stat
import sys
import tempfile
from functools import cache
from pathlib import Path
from typing import Any, ClassVar

from . import nodes as n

KEEP = 200  # parsed files at most; the oldest go first
_SUFFIX = ".ast"


@cache
def folder() -> Path | None:
    """The cache folder, made if need be: the first of $POLICYDSL_CACHE_DIR, $XDG_CACHE_HOME/policydsl,
    ~/.cache/policydsl and a folder of this user's in the system's temporary one that is (or can be made)
    private. None when caching is off or none is."""
    if os.environ.get("POLICYDSL_CACHE", "1").strip().lower() in ("0", "no", "off", "false"):
        return None
    user = os.getuid() if hasattr(os, "getuid") else os.environ.get("USERNAME", "user")
    chosen, xdg = os.environ.get("POLICYDSL_CACHE_DIR"), os.environ.get("XDG_CACHE_HOME")
    candidates = [Path(chosen)] if chosen else []
    if xdg:
        candidates.append(Path(xdg) / "policydsl")
    with contextlib.suppress(RuntimeError):  # no home folder
        candidates.append(Path.home() / ".cache" / "policydsl")
    candidates.append(Path(tempfile.gettempdir()) / f"policydsl-cache-{user}")
    for path in candidates:
        with contextlib.suppress(OSError):
            if path.is_absolute():
                path.mkdir(mode=0o700, parents=True, exist_ok=True)
                if _private(path):
                    return path
    return None


def _private(path: Path) -> bool:
    """Whether only this user can put files in ``path`` (so that nothing in it was planted by another)."""
    info = path.lstat()
    if not stat.S_ISDIR(info.st_mode):
        return False
    if not hasattr(os, "getuid"):  # Windows: a user's own profile folders are private already
        return True
    return info.st_uid == os.getuid() and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


@cache
def _engine() -> bytes:
    """A fingerprint of what turns text into an AST: a change to any of them makes every entry stale."""
    digest = hashlib.sha256(f"{sys.version_info[:2]}".encode())
    here = Path(__file__).resolve().parent
    for name in ("grammar.lark", "syntax.py", "nodes.py"):
        with contextlib.suppress(OSError):
            digest.update((here / name).read_bytes())
    return digest.digest()


def lark_tables() -> str | bool:
    """Where Lark keeps the grammar's parse tables (building them takes seconds): a file in the private
    folder, or False (built every time) rather than Lark's default, a predictable name in a shared one."""
    place = folder()
    return str(place / f"lark-{_engine().hex()[:32]}.pickle") if place is not None else False


def _key(text: str, file: str) -> str:
    return hashlib.sha256(_engine() + file.encode("utf-8", "surrogatepass") + b"\0"
                          + text.encode("utf-8", "surrogatepass")).hexdigest()


class _AstOnly(pickle.Unpickler):
    """Unpickles an AST and nothing else: its node classes, dates and fractions."""

    _ALLOWED: ClassVar = {("datetime", "date"), ("fractions", "Fraction")}

    def find_class(self, module: str, name: str) -> Any:
        if module == n.__name__:
            found = getattr(n, name, None)
            if isinstance(found, type) and found.__module__ == n.__name__:
                return found
        elif (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not part of an AST")


def load(text: str, file: str) -> n.Policy | None:
    """The AST kept for this text of this file, or None."""
    place = folder()
    if place is None:
        return None
    try:
        data = (place / (_key(text, file) + _SUFFIX)).read_bytes()
        policy = _AstOnly(io.BytesIO(data)).load()
    except Exception:  # absent, unreadable, truncated, from elsewhere: parsed afresh and written again
        return None
    return policy if isinstance(policy, n.Policy) else None


def store(text: str, file: str, policy: n.Policy) -> None:
    """Keep the AST of this text of this file (quietly nothing if the folder takes no file)."""
    place = folder()
    if place is None:
        return
    target = place / (_key(text, file) + _SUFFIX)
    with contextlib.suppress(OSError, pickle.PicklingError, RecursionError):
        fd, name = tempfile.mkstemp(dir=place, suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out:
                pickle.dump(policy, out, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(name, target)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(name)
        _prune(place)


def _prune(place: Path) -> None:
    """Remove the least recently written entries beyond KEEP."""
    entries = []
    for path in place.glob("*" + _SUFFIX):
        with contextlib.suppress(OSError):
            entries.append((path.stat().st_mtime, path))
    for _, path in sorted(entries)[:-KEEP]:
        with contextlib.suppress(OSError):
            path.unlink()
