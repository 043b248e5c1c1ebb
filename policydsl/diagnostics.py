"""Diagnostics: located, coded messages about a policy file, and the errors that carry them.

Every problem a user can cause ends up as one of the exceptions here, never as a Python traceback.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from .nodes import Span


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One finding of the parser or checker: ``severity`` is "error" or "warning"."""

    code: str
    severity: str
    message: str
    span: Span
    hint: str | None = None

    def render(self, source: str | None = None) -> str:
        """``file:line:col: error[E100]: message``, then the source line with a caret, then the hint."""
        out = [f"{self.span}: {self.severity}[{self.code}]: {self.message}"]
        if source is not None and self.span.line > 0:
            out.extend(excerpt(source, self.span))
        if self.hint:
            out.append(f"  help: {self.hint}")
        return "\n".join(out)

    def to_json(self) -> dict[str, object]:
        return {
            "code": self.code,
            "severity": self.severity,
            "message": self.message,
            "file": self.span.file,
            "line": self.span.line,
            "column": self.span.column,
            "end_line": self.span.end_line,
            "end_column": self.span.end_column,
            "hint": self.hint,
        }


def display_width(text: str) -> int:
    """Terminal columns taken by ``text``: CJK and full-width characters count twice."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def excerpt(source: str, span: Span, width: int = 100) -> list[str]:
    """The span's first line with a caret under the span, aligned for wide characters.

    A long line is cut to a window around the span, marked with '…', so the caret stays readable.
    """
    lines = source.splitlines()
    if not 1 <= span.line <= len(lines):
        return []
    text = lines[span.line - 1].expandtabs(1)
    start = min(span.column - 1, len(text))
    end = span.end_column - 1 if span.end_line == span.line else len(text)
    end = max(end, start + 1)
    prefix = suffix = ""
    if len(text) > width:
        lo = max(0, start - width // 3)
        hi = min(len(text), lo + width)
        prefix, suffix = ("…" if lo > 0 else ""), ("…" if hi < len(text) else "")
        text, start, end = text[lo:hi], start - lo, min(end, hi) - lo
    gutter = f"{span.line:>5} | "
    pad = " " * (len(gutter) - 2) + "| "
    marker = " " * display_width(prefix + text[:start]) + "^" * max(1, display_width(text[start:end]))
    return [gutter + prefix + text + suffix, pad + marker]


class PolicyDslError(Exception):
    """Base of every error a user can cause; its ``str`` is the message to show."""

    exit_code = 2


class PolicyError(PolicyDslError):
    """The policy file is invalid: carries every diagnostic found (errors and warnings)."""

    exit_code = 1

    def __init__(self, diagnostics: list[Diagnostic], source: str | dict[str, str] | None = None) -> None:
        self.diagnostics = diagnostics
        self.source = source  # the policy text, or file → text when the policy spans files (extends)
        super().__init__(self.render())

    def source_for(self, diagnostic: Diagnostic) -> str | None:
        """The text of the file a diagnostic points into."""
        if isinstance(self.source, dict):
            return self.source.get(diagnostic.span.file)
        return self.source

    def render(self) -> str:
        body = "\n".join(d.render(self.source_for(d)) for d in self.diagnostics)
        errors = sum(d.severity == "error" for d in self.diagnostics)
        return f"{body}\n{errors} error{'s' if errors != 1 else ''} in the policy"


@dataclass(frozen=True, slots=True)
class InputProblem:
    """One problem in a household document: where (a JSON path) and what was expected."""

    path: str
    message: str
    label: str | None = None  # the policy's name for the fact, e.g. 家庭总人口

    def __str__(self) -> str:
        where = self.path or "(the document)"
        return f"{where} ({self.label}): {self.message}" if self.label else f"{where}: {self.message}"


class HouseholdError(PolicyDslError):
    """The household input is invalid; lists every problem with its JSON path."""

    def __init__(self, problems: list[InputProblem], source: str = "household") -> None:
        self.problems = problems
        self.source = source
        lines = [f"{source}: invalid household ({len(problems)} problem{'s' if len(problems) != 1 else ''})"]
        lines += [f"  {p}" for p in problems]
        super().__init__("\n".join(lines))


class UsageError(PolicyDslError):
    """A bad flag, file or date given on the command line or to the library."""
