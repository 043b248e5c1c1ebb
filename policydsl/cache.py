"""What is kept between runs, so that an unchanged policy is not parsed again: each policy file's AST and
the grammar's parse tables, in a folder only this user can write to.

Parsing a policy takes about 50 ms, of a start-up of about 150 ms; loading its AST from here takes under
1 ms. Building the grammar's tables takes seconds: they are kept too. An AST is found by a hash
of its text, its name and the code that parses it (grammar, syntax and AST classes, the versions of
policydsl, Lark and Python), so an edited policy or a new engine parses afresh; where that code cannot be
read (an install in a zip file), nothing is kept. Nothing read back here can run code: the tables are
unpickled as plain data only (no class or function allowed), an AST with only its own classes, dates and
fractions; an AST whose text or file name is not the policy's is not used. Set ``POLICYDSL_CACHE=0`` to keep nothing,
``POLICYDSL_CACHE_DIR`` to choose the folder.
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
_TABLES = ".tables"


@cache
def folder() -> Path | None:
    """The cache folder, made if need be: the first of $POLICYDSL_CACHE_DIR, $XDG_CACHE_HOME/policydsl,
    ~/.cache/policydsl and a folder of this user's in the system's temporary one that is (or can be made)
    private and writable. None when caching is off, the parsing code cannot be read, or no folder will do."""
    if os.environ.get("POLICYDSL_CACHE", "1").strip().lower() in ("0", "no", "off", "false") or _engine() is None:
        return None
    user = os.getuid() if hasattr(os, "getuid") else os.environ.get("USERNAME", "user")
    chosen, xdg = os.environ.get("POLICYDSL_CACHE_DIR"), os.environ.get("XDG_CACHE_HOME")
    candidates = [Path(chosen)] if chosen else []
    if xdg:
        candidates.append(Path(xdg) / "policydsl")
    with contextlib.suppress(RuntimeError):  # no home folder
        home = Path.home()
        if str(home) not in ("", "/", "."):
            candidates.append(home / ".cache" / "policydsl")
    candidates.append(Path(tempfile.gettempdir()) / f"policydsl-cache-{user}")
    for path in candidates:
        with contextlib.suppress(OSError):
            if path.is_absolute():
                path.mkdir(mode=0o700, parents=True, exist_ok=True)
                if _private(path) and os.access(path, os.W_OK | os.X_OK):
                    return path
    return None


def _private(path: Path) -> bool:
    """Whether only this user can put files in ``path``: it is a folder of theirs that others cannot write
    to, and no folder above it lets someone else swap it (each is theirs or root's, and writable by
    others only if sticky, as /tmp is)."""
    info = path.lstat()
    if not stat.S_ISDIR(info.st_mode):
        return False
    if not hasattr(os, "getuid"):  # Windows: a user's own profile folders are private already
        return True
    me = os.getuid()
    if info.st_uid != me or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return False
    for above in path.parents:
        up = above.stat()
        if up.st_uid not in (me, 0) or (up.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not up.st_mode & stat.S_ISVTX):
            return False
    return True


@cache
def _engine() -> bytes | None:
    """A fingerprint of what turns text into an AST, so that a change to any of it makes every entry stale;
    None where those files cannot be read (then nothing is kept)."""
    from importlib.util import find_spec

    from . import __version__

    digest = hashlib.sha256(f"{sys.version_info[:2]} {__version__}".encode())
    here = Path(__file__).resolve().parent
    lark = find_spec("lark")  # its __init__ holds its version: found without importing it
    if lark is None or not lark.origin:
        return None
    try:
        for path in (here / "grammar.lark", here / "syntax.py", here / "nodes.py", Path(lark.origin)):
            digest.update(path.read_bytes())
    except OSError:
        return None
    return digest.digest()


def _key(text: str, file: str) -> str:
    return hashlib.sha256((_engine() or b"") + file.encode("utf-8", "surrogatepass") + b"\0"
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
    if not isinstance(policy, n.Policy) or policy.source != text or policy.sources != {file: text} \
            or policy.header.span.file != file:
        return None  # not this policy's tree: parsed afresh
    return policy


def store(text: str, file: str, policy: n.Policy) -> None:
    """Keep the AST of this text of this file (quietly nothing if the folder takes no file)."""
    place = folder()
    if place is not None:
        with contextlib.suppress(pickle.PicklingError, RecursionError):
            _write(place / (_key(text, file) + _SUFFIX), pickle.dumps(policy, protocol=pickle.HIGHEST_PROTOCOL))
            _prune(place)


class _PlainOnly(pickle.Unpickler):
    """Unpickles plain data only (dicts, lists, tuples, numbers, texts): no class, no function."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"{module}.{name} is not plain data")


def load_tables(name: str) -> Any:
    """The grammar's parse tables kept under ``name`` (plain data, as ``store_tables`` wrote them), or None."""
    place = folder()
    if place is None:
        return None
    try:
        return _PlainOnly(io.BytesIO((place / f"{name}{_TABLES}").read_bytes())).load()
    except Exception:  # absent, unreadable, damaged, or not plain data: built again
        return None


def store_tables(name: str, tables: Any) -> None:
    """Keep the grammar's parse tables (plain data) under ``name``; older tables are removed."""
    place = folder()
    if place is None:
        return
    target = place / f"{name}{_TABLES}"
    with contextlib.suppress(pickle.PicklingError, RecursionError):
        _write(target, pickle.dumps(tables, protocol=pickle.HIGHEST_PROTOCOL))
    for old in place.glob("lark-*" + _TABLES):
        if old != target:
            with contextlib.suppress(OSError):
                old.unlink()


def _write(target: Path, data: bytes) -> None:
    """``data`` as the file ``target``, whole or not at all (quietly nothing if the folder takes no file)."""
    name = None
    try:
        fd, name = tempfile.mkstemp(dir=target.parent, suffix=".part")
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(name, target)
    except OSError:
        if name is not None:
            with contextlib.suppress(OSError):
                os.unlink(name)


def _prune(place: Path) -> None:
    """Remove the least recently written entries beyond KEEP."""
    entries = []
    for path in place.glob("*" + _SUFFIX):
        with contextlib.suppress(OSError):
            entries.append((path.stat().st_mtime, path))
    for _, path in sorted(entries)[:-KEEP]:
        with contextlib.suppress(OSError):
            path.unlink()
