"""Parsing: a policy file, or policy text, → AST (``nodes``).

An unchanged file's AST comes from ``cache``, in about 1 ms. Anything else is parsed by ``syntax``
(Lark), which is imported only then: one household's evaluation starts without it.
"""

from __future__ import annotations

from pathlib import Path

from . import cache
from . import nodes as n
from .diagnostics import UsageError


def parse(text: str, file: str = "<policy>") -> n.Policy:
    """Parse policy text into an AST; raises PolicyError with a located syntax error."""
    from .syntax import parse as parse_text

    return parse_text(text, file)


def parse_file(path: str | Path) -> n.Policy:
    """Read and parse a policy file, naming it in every diagnostic; an unchanged file's AST comes from
    ``cache`` instead."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise UsageError(f"{p}: no such policy file") from None
    except UnicodeDecodeError:
        raise UsageError(f"{p}: is not UTF-8 text; save the policy as UTF-8 (files from some Chinese Windows "
                         "tools are GBK-encoded)") from None
    except OSError as exc:
        raise UsageError(f"{p}: cannot read the policy file ({exc.strerror})") from None
    file = str(path)
    policy = cache.load(text, file)
    if policy is None:
        policy = parse(text, file)
        cache.store(text, file, policy)
    return policy


def reserved_words() -> list[str]:
    """Words of the language that cannot be used as names."""
    from .syntax import reserved_words as words

    return words()
