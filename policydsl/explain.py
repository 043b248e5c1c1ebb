"""Explanations for citizens: a Result and its Trace → a letter in Chinese or English (text, Markdown, HTML).

The wording lives in Jinja templates beside the policy (``templates/<lang>/``), one per kind of sentence,
plus the policy's own phrasing of a condition (``explain "…" "…"`` after a ``requires``). Templates run in
Jinja's immutable sandbox with StrictUndefined, so a template is data, never code. Every number shown
comes from the trace, formatted here; nothing is computed in a template.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from fractions import Fraction
from pathlib import Path
from typing import Any

import jinja2
import jinja2.meta
from jinja2 import nodes as jn
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from . import nodes as n
from .checker import CheckedPolicy
from .diagnostics import PolicyDslError
from .evaluator import ComparisonEvent, Compiler, ConditionTrace, Ctx, NotEvaluated, Result, RuleTrace
from .values import RecordValue, Series, Unknown, exact, exact_text, format_amount

LANGUAGES = ("zh", "en")
FORMATS = {"text": "letter.txt.j2", "markdown": "letter.md.j2", "html": "letter.html.j2"}
SENTENCES = ("outcome.j2", "condition.j2", "what_if.j2", "question.j2", "measure.j2", "status.j2",
             "unconfirmed.j2")
CONDITION_NAMES = {"holds", "values", "window", "failed_months", "left", "right", "month", "precise", "text",
                   "subject", "relation", "object", "highest", "lowest"}
LETTER_NAMES = {"lang", "title", "jurisdiction", "source", "as_of", "in_force", "eligible", "outcome",
                "categories_met", "categories_not_met", "categories_open", "precondition", "measures", "questions",
                "status", "unconfirmed"}
GIVEN = {  # what each template is given (docs/explanations.md); anything else is a mistake caught by policy check
    "outcome.j2": {"eligible", "primary", "categories", "measures", "in_force", "as_of", "title"},
    "condition.j2": CONDITION_NAMES, "what_if.j2": {"subject", "relation", "bound", "month"},
    "question.j2": {"label", "kind", "month"}, "measure.j2": {"label", "clause"},
    "status.j2": {"label", "clause", "reasons"}, "unconfirmed.j2": {"label", "value", "start", "note"},
    **{name: LETTER_NAMES for name in FORMATS.values()},
}
_RELATION = {
    "zh": {"<": "低于", "<=": "不超过", ">": "超过", ">=": "达到", "=": "等于", "!=": "不等于"},
    "en": {"<": "below", "<=": "at most", ">": "more than", ">=": "at least", "=": "equal to", "!=": "other than"},
}
_OPERATOR = {"+": "+", "-": "−", "*": "×", "/": "÷"}


class TemplateError(PolicyDslError):
    """A template is invalid or tried something the sandbox refuses; names the template file and line."""

    exit_code = 1


def default_template_dir(policy: CheckedPolicy) -> Path:
    """``templates/`` beside the policy file, else the one beside the bundled policy."""
    beside = Path(policy.policy.header.span.file).resolve().parent / "templates"
    if beside.is_dir():
        return beside
    from . import default_policy_path
    return default_policy_path().parent / "templates"


# ---------------------------------------------------------------- formatting for people


def fmt_date(day: date, lang: str) -> str:
    return f"{day.year}年{day.month}月{day.day}日" if lang == "zh" else f"{day.day} {day:%B} {day.year}"


def fmt_month(month: str, lang: str) -> str:
    year, mon = month.split("-")
    return f"{year}年{int(mon)}月" if lang == "zh" else f"{date(int(year), int(mon), 1):%B} {year}"


class Formatter:
    """Values of one policy as a citizen reads them: 700.00 元, 是/否, labels instead of ids."""

    def __init__(self, policy: CheckedPolicy, lang: str) -> None:
        self.policy = policy
        self.lang = lang

    def label(self, node: Any) -> str:
        """The declaration's label in this language (the Chinese one when no English one is given)."""
        en = getattr(node, "label_en", None)
        zh = getattr(node, "label", None)
        return (en or zh or "") if self.lang == "en" else (zh or en or "")

    def symbol_label(self, name: str) -> str:
        sym = self.policy.symbols.get(name)
        return self.label(sym.decl) if sym is not None and sym.decl is not None else name

    def member_label(self, name: str) -> str:
        for enum in self.policy.enums.values():
            for m in enum.members:
                if m.name == name:
                    return self.label(m)
        return name

    def value(self, value: Any, kind: str | None = None, precise: bool = False) -> str:
        if isinstance(value, bool):
            return ("是" if value else "否") if self.lang == "zh" else ("yes" if value else "no")
        if isinstance(value, (int, Fraction)):
            digits = exact_text(value, 6, min_places=2) if precise else format_amount(value)
            return f"{digits} 元" if kind == "money" else (
                str(value) if Fraction(value).denominator == 1 else digits)
        if isinstance(value, (frozenset, set)):
            sep = "、" if self.lang == "zh" else ", "
            return sep.join(self.member_label(v) for v in sorted(value)) or ("无" if self.lang == "zh" else "none")
        if isinstance(value, str):
            return self.member_label(value)
        if _is_window(value):
            return self.window(value)
        if isinstance(value, (Unknown, NotEvaluated, Series, RecordValue)) or value is None:
            return ""
        return str(value)

    def _is_count(self, e: n.Expr) -> bool:
        ty = self.policy.types.get(id(e))
        return ty is not None and ty.kind == "count"

    def window(self, months: tuple[str, ...]) -> str:
        first, last = fmt_month(months[0], self.lang), fmt_month(months[-1], self.lang)
        return f"{first}至{last}" if self.lang == "zh" else f"{first} to {last}"

    def describe(self, e: n.Expr) -> str:
        """An expression in words, for 'what would change': names become their labels."""
        if isinstance(e, n.Name):
            return self.symbol_label(e.name)
        if isinstance(e, n.FieldAccess) and isinstance(e.target, n.Name):
            sym = self.policy.symbols.get(e.target.name)
            record = self.policy.records.get(sym.type.of or "") if sym else None
            field = next((f for f in record.fields if f.name == e.name), None) if record else None
            return self.label(field) if field else e.name
        if isinstance(e, n.Index):
            return self.describe(e.target)
        if isinstance(e, n.Number):
            return e.text
        if isinstance(e, n.Call):
            return ("全年" if self.lang == "zh" else "12 months of ") + self.describe(e.argument)
        if isinstance(e, n.Aggregate):
            inner = self.describe(e.body)
            return (f"平均{inner}" if self.lang == "zh" else f"the average {inner}") if e.function == "mean" else inner
        if isinstance(e, n.BinOp) and e.op == "/" and self._is_count(e.right) and not isinstance(e.left, n.BinOp):
            inner = self.describe(e.left)  # an amount per person: the way people say it (家庭人均月收入)
            if self.lang == "zh":
                return f"家庭人均{inner[2:]}" if inner.startswith("家庭") else f"人均{inner}"
            return f"{inner} per person"
        if isinstance(e, n.BinOp):
            left, right = self.describe(e.left), self.describe(e.right)
            if isinstance(e.left, n.BinOp) and e.op in "*/":
                left = f"({left})"
            return f"{left} {_OPERATOR[e.op]} {right}"
        return ""


# ---------------------------------------------------------------- the model a letter is rendered from


@dataclass
class Sentence:
    """One rendered sentence with the rule or fact it is about (for HTML structure and tests)."""

    text: str
    about: str = ""
    clause: str = ""


MAX_TEXT = 100_000  # characters a template may build by repetition


class _Sandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox, also refusing to build huge texts or lists by multiplication."""

    intercepted_binops = frozenset(["*", "**"])

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _cap(args, kwargs)
        return super().call(__context, __obj, *args, **kwargs)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.filters = {name: _capped(fn) for name, fn in self.filters.items()}  # center(10**9) and the like

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, int) and right > 64:
            raise SecurityError("a power this large is not allowed in a template")
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and isinstance(times, int) and len(seq) * times > MAX_TEXT:
                    raise SecurityError(f"a template may not build texts longer than {MAX_TEXT} characters")
        return super().call_binop(context, operator, left, right)


def _cap(args: Any, kwargs: Any) -> None:
    """Refuse a call that asks for a huge width or count (ljust(10**9), center, wordwrap, …)."""
    for value in (*args, *kwargs.values()):
        if isinstance(value, int) and not isinstance(value, bool) and value > MAX_TEXT:
            raise SecurityError(f"a template may not ask for sizes above {MAX_TEXT}")


def _capped(fn: Any) -> Any:
    @functools.wraps(fn)  # keeps Jinja's pass_context / pass_environment marks
    def filter_(*args: Any, **kwargs: Any) -> Any:
        _cap(args[1:], kwargs)
        return fn(*args, **kwargs)
    return filter_


def _escape_markdown(value: Any) -> Any:
    """Values inserted into a Markdown letter stay text: no markup, no HTML."""
    if not isinstance(value, str):
        return value
    for char in "\\`*_[]#|":
        value = value.replace(char, "\\" + char)
    return value.replace("<", "&lt;").replace(">", "&gt;")


class _Substitute(Compiler):
    """Compiles an expression with one node replaced by a variable, to see how the expression depends on it."""

    def __init__(self, policy: CheckedPolicy, target: int) -> None:
        super().__init__(policy, traced=False)
        self.target = target

    def compile(self, e: n.Expr, local: frozenset[str]) -> Any:
        if id(e) == self.target:
            return lambda c: c.vars["__x__"]
        return super().compile(e, local)


class Explainer:
    """Renders explanations of one policy's results; templates are loaded and checked once."""

    def __init__(self, policy: CheckedPolicy, template_dir: Path | None = None) -> None:
        self.policy = policy
        self.dir = template_dir or default_template_dir(policy)
        self.envs = {(lang, mode): self._env(lang, mode) for lang in LANGUAGES for mode in FORMATS}
        self._window: tuple[str, ...] | None = None
        self._result: Result | None = None
        self._inputs: dict[str, Any] = {}

    def _env(self, lang: str, mode: str) -> ImmutableSandboxedEnvironment:
        """The sandbox for one language and output format: HTML autoescaped, Markdown with its markup escaped."""
        finalize = _escape_markdown if mode == "markdown" else None
        env = _Sandbox(loader=jinja2.FileSystemLoader(str(self.dir / lang)), undefined=jinja2.StrictUndefined,
                       autoescape=mode == "html", finalize=finalize, trim_blocks=True, lstrip_blocks=True,
                       keep_trailing_newline=False)
        env.filters["upfirst"] = lambda text: text[:1].upper() + text[1:] if isinstance(text, str) else text
        return env

    # -- checking templates (policy check uses this)
    def check_templates(self) -> list[str]:
        """Problems in the templates and in the policy's own phrases: syntax, and reaching for internals."""
        problems: list[str] = []
        for lang in LANGUAGES:
            env = self.envs[(lang, "text")]
            for name in (*SENTENCES, *FORMATS.values()):
                path = self.dir / lang / name
                if not path.is_file():
                    problems.append(f"{path}: missing template")
                    continue
                given = GIVEN[name] | (set(self.policy.symbols) if name == "condition.j2" else set())
                problems += _check_source(env, path.read_text(encoding="utf-8"), str(path), located=False,
                                          given=given, folder=self.dir / lang)
        for rule in self.policy.rules:
            for cond in rule.conditions:
                read = {node.name for node in cond.expr.walk() if isinstance(node, n.Name)
                        and node.name in self.policy.symbols and self.policy.symbols[node.name].kind != "member"}
                for phrase in (cond.phrase_zh, cond.phrase_en):
                    if phrase:
                        problems += _check_source(self.envs[("zh", "text")], phrase, str(cond.span), located=True,
                                                  given=CONDITION_NAMES | read, folder=None)
        return problems

    # -- rendering
    def render(self, result: Result, lang: str = "zh", fmt: str = "text") -> str:
        if result.trace is None:
            raise ValueError("explanations need a result evaluated with trace=True")
        env = self.envs[(lang, fmt)]
        model = self.model(result, lang)
        return _render(env, FORMATS[fmt], model).strip() + "\n"

    def model(self, result: Result, lang: str) -> dict[str, Any]:
        """Everything a letter says, as sentences rendered from the sentence templates."""
        assert result.trace is not None
        # the months assessed, for sentences about values computed over them (the policy's window)
        self._window = next((v for v in result.trace.definitions.values() if _is_window(v)), None)
        self._result = result
        inputs = {name for name, sym in self.policy.symbols.items() if sym.kind == "input"}
        # the household's facts as the trace read them: what 'what would change' recomputes with
        self._inputs = {name: value for rt in result.trace.rules for ct in rt.conditions
                        for name, value in ct.values.items() if name in inputs}
        f = Formatter(self.policy, lang)
        env = self.envs[(lang, "text")]
        traces = {id(rt.rule): rt for rt in result.trace.rules}
        pol = self.policy
        header = pol.policy.header
        title = (header.title_en if lang == "en" else None) or header.title or header.id

        def sentence(template: str, **ctx: Any) -> str:
            return _render(env, template, ctx).strip()

        cats_met = [self._rule_view(f, traces[id(r)], "met") for r in pol.categories if r.id in result.categories]
        cats_open = [self._rule_view(f, traces[id(r)], "open") for r in pol.categories
                     if r.id in result.undetermined]
        precondition = traces.get(id(pol.precondition)) if pol.precondition is not None else None
        pre_failed = precondition is not None and precondition.result is False
        cats_not = [] if pre_failed else [self._rule_view(f, traces[id(r)], "not") for r in pol.categories
                                          if id(r) in traces and traces[id(r)].result is False]
        outcome = sentence("outcome.j2", eligible=result.eligible, primary=f.label(_rule(pol, result.primary_category)),
                           categories=[c["label"] for c in cats_met], in_force=result.in_force,
                           as_of=fmt_date(result.as_of, lang), title=title,
                           measures=[f.label(_rule(pol, m)) for m in result.measures])
        for view in cats_met + cats_not:
            view["sentences"] = [sentence("condition.j2", **c) for c in view["conditions"]]
            view["what_if"] = [sentence("what_if.j2", **w) for w in view["changes"]]
        precondition_view = self._rule_view(f, precondition, "not") if pre_failed and precondition else None
        if precondition_view:
            precondition_view["sentences"] = [sentence("condition.j2", **c) for c in precondition_view["conditions"]]
        measures = [sentence("measure.j2", label=f.label(_rule(pol, m)), clause=_rule(pol, m).clause or "")
                    for m in result.measures]
        order = {i.name: k for k, i in enumerate(pol.policy.inputs)}  # ask in the order the policy declares facts
        missing = sorted(result.missing, key=lambda p: (order.get(p.split(".")[0].split("[")[0], len(order)), p))
        questions = [sentence("question.j2", **self._question(f, path)) for path in missing]
        status = None
        if result.status is not None:
            rt = traces[id(_rule(pol, result.status))]
            view = self._rule_view(f, rt, "met")
            reasons = [sentence("condition.j2", **c) for c in view["conditions"]]
            if rt.rule.mode == "otherwise":  # why none of the earlier statuses holds
                earlier = pol.statuses[:pol.statuses.index(rt.rule)]
                for rule in earlier:
                    not_view = self._rule_view(f, traces[id(rule)], "not")
                    head = (f"未达到「{not_view['label']}」标准，因为" if lang == "zh"
                            else f"not yet \"{not_view['label']}\", because ")
                    reasons += [head + sentence("condition.j2", **c) for c in not_view["conditions"]]
            status = sentence("status.j2", label=view["label"], clause=view["clause"], reasons=reasons)
        unconfirmed = [sentence("unconfirmed.j2", label=f.symbol_label(name),
                                value=f.value(pv.value, "money" if pol.symbols[name].type.kind == "money" else None),
                                start=fmt_date(pv.start, lang),
                                note=(pv.note_en if lang == "en" and pv.note_en else pv.note) or "")
                       for name, pv in result.parameters.items() if pv.confirmed is False]
        return {
            "lang": lang, "title": title, "jurisdiction": header.jurisdiction or "",
            "source": header.source or "", "as_of": fmt_date(result.as_of, lang), "in_force": result.in_force,
            "eligible": result.eligible, "outcome": outcome, "categories_met": cats_met,
            "categories_not_met": cats_not, "categories_open": cats_open, "precondition": precondition_view,
            "measures": measures, "questions": questions, "status": status, "unconfirmed": unconfirmed,
        }

    def _rule_view(self, f: Formatter, rt: RuleTrace, mode: str) -> dict[str, Any]:
        """A rule for a letter: its label, clause, the conditions to state, and what would change it."""
        conds = rt.conditions
        if mode == "not":  # the first condition that failed, with its numbers
            failed = [c for c in conds if c.outcome is False]
            shown = failed[:1]
        else:
            shown = [c for c in conds if c.outcome is True or mode == "met"]
        changes: list[dict[str, Any]] = []
        if mode == "not":
            failed_all = [c for c in conds if c.outcome is False]
            if failed_all and all(_numeric(c) for c in failed_all) and not any(
                    isinstance(c.outcome, Unknown) for c in conds):
                for c in failed_all:
                    changes += self._changes(f, c)
        return {"id": rt.rule.id, "label": f.label(rt.rule), "clause": rt.rule.clause or "",
                "conditions": [self._condition(f, c) for c in shown], "changes": changes}

    def _condition(self, f: Formatter, ct: ConditionTrace) -> dict[str, Any]:
        """The variables a condition sentence (or the policy's own phrase) is rendered with."""
        pol = self.policy
        values = {}
        for name, value in ct.values.items():
            sym = pol.symbols.get(name.split(".")[0])
            kind = sym.type.kind if sym is not None else None
            if "." in name and sym is not None and sym.type.kind == "record":
                record = pol.records.get(sym.type.of or "")
                field = next((x for x in record.fields if x.name == name.split(".", 1)[1]), None) if record else None
                kind = field.type.kind if field else None
            values[name] = f.value(value, kind)
        events = ct.comparisons
        deciding = next((e for e in events if e.outcome is False), events[0] if events else None)
        failed_months = [self._event(f, e) for e in events if e.outcome is False and e.bindings]
        if deciding is not None and self._event(f, deciding)["precise"]:  # the same value, shown the same way
            for name, raw in ct.values.items():
                if _number(raw) and raw in (deciding.left, deciding.right):
                    values[name] = f.value(raw, self._kind_of_name(name), precise=True)
        per_item = [e for e in events if e.bindings and _number(e.left)]
        extremes: dict[str, str] = {}
        if per_item:
            kind = self._kind(per_item[0].node.left)
            extremes = {"highest": f.value(max(e.left for e in per_item), kind),
                        "lowest": f.value(min(e.left for e in per_item), kind)}
        window = next((v for v in ct.values.values() if _is_window(v)), None) or self._window
        months = sorted({str(v) for e in events for v in e.bindings.values() if isinstance(v, str)})
        ctx: dict[str, Any] = {
            "holds": ct.outcome is True, "values": values,
            "window": f.window(tuple(months)) if months else (f.window(window) if window else ""),
            "failed_months": failed_months, **(self._event(f, deciding) if deciding else {"left": "", "right": ""}),
            "text": "", "subject": f.describe(deciding.node.left) if deciding else "",
            "relation": _RELATION[f.lang][deciding.node.op] if deciding else "",
            "object": f.describe(deciding.node.right) if deciding else "",
            "highest": "", "lowest": "", **extremes,
        }
        ctx.update({k: v for k, v in values.items() if "." not in k})
        phrase = ct.condition.phrase_zh if f.lang == "zh" else ct.condition.phrase_en
        if phrase:
            ctx["text"] = _render_string(self.envs[(f.lang, "text")], phrase, ctx, str(ct.condition.span))
        else:
            ctx["text"] = self._default_text(f, ct, ctx)
        return ctx

    def _event(self, f: Formatter, e: ComparisonEvent) -> dict[str, Any]:
        """Both sides of a comparison as shown; more digits where two would make unequal values look equal."""
        kind_l = self._kind(e.node.left)
        kind_r = self._kind(e.node.right)
        month = next((v for v in e.bindings.values() if isinstance(v, str) and len(v) == 7), None)
        left, right = f.value(e.left, kind_l), f.value(e.right, kind_r)
        precise = left == right and _number(e.left) and _number(e.right) and e.left != e.right
        if precise:
            left, right = f.value(e.left, kind_l, precise=True), f.value(e.right, kind_r, precise=True)
        return {"left": left, "right": right, "month": fmt_month(month, f.lang) if month else "",
                "precise": precise}

    def _kind_of_name(self, name: str) -> str | None:
        sym = self.policy.symbols.get(name.split(".")[0])
        return sym.type.kind if sym is not None else None

    def _kind(self, e: n.Expr) -> str | None:
        ty = self.policy.types.get(id(e))
        if ty is not None and ty.literal:
            return None
        return ty.kind if ty is not None else None

    def _default_text(self, f: Formatter, ct: ConditionTrace, ctx: dict[str, Any]) -> str:
        """A condition in words when the policy gives no phrase of its own."""
        if ct.comparisons and ctx["subject"]:
            not_word = "" if ct.outcome is True else ("并非" if f.lang == "zh" else "not ")
            if f.lang == "zh":
                return f"{ctx['subject']}（{ctx['left']}）{not_word}{ctx['relation']}{ctx['object']}（{ctx['right']}）"
            return f"{ctx['subject']} ({ctx['left']}) was {not_word}{ctx['relation']} {ctx['object']} ({ctx['right']})"
        names = ", ".join(f"{self._path_label(f, k)}: {v}" for k, v in ctx["values"].items() if v)
        verdict = ("成立" if ct.outcome is True else "不成立") if f.lang == "zh" else (
            "holds" if ct.outcome is True else "does not hold")
        return f"{names} — {verdict}" if names else verdict

    def _path_label(self, f: Formatter, path: str) -> str:
        """The label of a name or a record field path (archive.filed → 已建档)."""
        head, _, field_name = path.partition(".")
        if not field_name:
            return f.symbol_label(head)
        sym = self.policy.symbols.get(head)
        record = self.policy.records.get(sym.type.of or "") if sym is not None else None
        field = next((x for x in record.fields if x.name == field_name), None) if record else None
        return f.label(field) if field is not None else path

    def _changes(self, f: Formatter, ct: ConditionTrace) -> list[dict[str, Any]]:
        """What would have met a failed numeric condition: the value of one of the household's own facts
        (or of the compared amount) that just meets it, computed exactly from the policy's expression."""
        grouped: dict[tuple[str, str, str], list[str]] = {}
        all_months = 0
        for e in ct.comparisons:
            if e.bindings:
                all_months += 1
            if e.outcome is not False:
                continue
            ev = self._event(f, e)
            solved = self._solve(e)
            key: tuple[str, str, str]
            if solved is not None:
                target, op, solved_bound = solved
                key = (f.describe(target), _RELATION[f.lang][op], f.value(solved_bound, self._kind(target)))
            else:
                key = (f.describe(e.node.left), _RELATION[f.lang][e.node.op], ev["right"])
            grouped.setdefault(key, [])
            if ev["month"]:
                grouped[key].append(ev["month"])
        out = []
        for (subject, relation, bound), months in grouped.items():
            if months and len(months) == all_months > 1:
                when = "每个月" if f.lang == "zh" else "every month"
            elif f.lang == "zh":
                when = "、".join(months)
            else:
                when = ", ".join(months[:-1]) + (" and " if len(months) > 1 else "") + (months[-1] if months else "")
            out.append({"subject": subject, "relation": relation, "bound": bound, "month": when})
        return out

    def _solve(self, e: ComparisonEvent) -> tuple[n.Expr, str, Fraction] | None:
        """For ``L op R`` that failed: a fact x in L and the value of x at which L would meet R (L linear in x)."""
        if e.node.op in ("=", "!=") or not _number(e.right):
            return None
        target = next((node for node in e.node.left.walk() if isinstance(node, n.Expr) and self._solvable(node)), None)
        if target is None:
            return None
        fn = _Substitute(self.policy, id(target)).compile(e.node.left, frozenset(e.bindings))
        assert self._result is not None and self._result.trace is not None
        ctx = Ctx(dict(self._inputs), {k: exact(v.value) for k, v in self._result.parameters.items()},
                  self._result.as_of, defs=dict(self._result.trace.definitions))
        points = []
        for x in (0, 1, 2):
            ctx.vars = {**e.bindings, "__x__": x}
            try:
                value = fn(ctx)
            except PolicyDslError:
                return None
            if not _number(value):
                return None
            points.append(Fraction(value))
        slope = points[1] - points[0]
        if slope == 0 or points[2] - points[1] != slope:
            return None
        bound = (Fraction(e.right) - points[0]) / slope
        op = e.node.op if slope > 0 else {"<": ">", "<=": ">=", ">": "<", ">=": "<="}[e.node.op]
        return target, op, bound

    def _solvable(self, node: n.Node) -> bool:
        """A fact of the household a citizen could state differently: an amount, or one month of a series."""
        if isinstance(node, n.Name):
            sym = self.policy.symbols.get(node.name)
            return sym is not None and sym.kind == "input" and sym.type.kind == "money"
        if isinstance(node, n.Index) and isinstance(node.target, n.Name):
            sym = self.policy.symbols.get(node.target.name)
            return sym is not None and sym.kind == "input" and sym.type.kind == "series"
        return False

    def _question(self, f: Formatter, path: str) -> dict[str, Any]:
        """A missing fact as something to ask the family."""
        head, _, rest = path.partition(".")
        sym = self.policy.symbols.get(head)
        label = f.symbol_label(head)
        kind = sym.type.kind if sym else None
        month = ""
        if rest and sym is not None and sym.type.kind == "record":
            record = self.policy.records.get(sym.type.of or "")
            name, _, month = rest.partition(".")
            field = next((x for x in record.fields if x.name == name), None) if record else None
            if field is not None:
                label = f.label(field)
                kind = {"boolean": "boolean", "monthly": "series"}.get(field.type.kind, field.type.kind)
        elif rest:
            month = rest
        if month and len(month) == 7:
            month = fmt_month(month, f.lang)
        return {"label": label, "kind": kind or "", "month": month}


# ---------------------------------------------------------------- helpers


def _rule(policy: CheckedPolicy, rule_id: str | None) -> n.Rule:
    for r in policy.rules:
        if r.id == rule_id:
            return r
    return n.Rule(n.NOWHERE, "none", "", None, None, ())


def _number(value: Any) -> bool:
    return isinstance(value, (int, Fraction)) and not isinstance(value, bool)


def _is_window(value: Any) -> bool:
    return isinstance(value, tuple) and bool(value) and all(isinstance(v, str) and len(v) == 7 for v in value)


def _numeric(ct: ConditionTrace) -> bool:
    """A condition decided by comparing numbers (so a different number could have met it)."""
    expr = ct.condition.expr
    while isinstance(expr, n.Quantified):
        expr = expr.body
    return isinstance(expr, n.Compare) and bool(ct.comparisons) and all(
        isinstance(e.left, (int, Fraction)) and not isinstance(e.left, bool) for e in ct.comparisons)


def _where(exc: BaseException) -> tuple[str, int]:
    """The template file and line a rendering error happened at (Jinja keeps them in the traceback)."""
    tb = exc.__traceback__
    found = ("template", 0)
    while tb is not None:
        code = tb.tb_frame.f_code
        if code.co_filename.endswith(".j2") or code.co_filename == "<template>":
            found = (code.co_filename, tb.tb_lineno)
        tb = tb.tb_next
    return found


_FAILURES = (jinja2.TemplateError, ArithmeticError, TypeError, ValueError, LookupError, MemoryError)


def _run(render: Any, where: str | None) -> str:
    """Render, turning every failure into a TemplateError at the template's file and line (or ``where``,
    the location of a condition's explain text)."""
    try:
        return str(render())
    except jinja2.TemplateSyntaxError as exc:
        at = where or f"{exc.filename}:{exc.lineno}"
        raise TemplateError(f"{at}: template syntax error: {exc.message}") from None
    except jinja2.TemplateNotFound as exc:
        raise TemplateError(f"{where or exc.name}: template not found") from None
    except SecurityError as exc:
        at = where or "{}:{}".format(*_where(exc))
        raise TemplateError(f"{at}: refused by the template sandbox: {exc}") from None
    except jinja2.UndefinedError as exc:
        at = where or "{}:{}".format(*_where(exc))
        raise TemplateError(f"{at}: the template uses something that is not provided: {exc.message}") from None
    except _FAILURES as exc:
        at = where or "{}:{}".format(*_where(exc))
        raise TemplateError(f"{at}: the template failed: {type(exc).__name__}: {exc}") from None


def _render(env: jinja2.Environment, name: str, ctx: dict[str, Any]) -> str:
    return _run(lambda: env.get_template(name).render(**ctx), None)


def _render_string(env: jinja2.Environment, source: str, ctx: dict[str, Any], where: str) -> str:
    return _run(lambda: env.from_string(source).render(**ctx), f"{where} (explain text)")


def _unsafe(node: jn.Node) -> Iterator[tuple[int, str]]:
    """Attribute names a template must never reach for (Python internals)."""
    for child in node.find_all((jn.Getattr, jn.Getitem)):
        arg = getattr(child, "arg", None)
        name = child.attr if isinstance(child, jn.Getattr) else (arg.value if isinstance(arg, jn.Const) else None)
        if isinstance(name, str) and name.startswith("_"):
            yield child.lineno, name


def _check_source(env: jinja2.Environment, source: str, where: str, located: bool, given: set[str],
                  folder: Path | None) -> list[str]:
    """Problems of one template (a file, or an explain text whose ``where`` is already file:line:col)."""
    def at(line: int) -> str:
        return where if located else f"{where}:{line}"
    try:
        tree = env.parse(source)
    except jinja2.TemplateSyntaxError as exc:
        return [f"{at(exc.lineno)}: error[E120]: template syntax error: {exc.message}"]
    problems = [f"{at(line)}: error[E121]: the template reaches for '{name}', a Python internal; templates may "
                "only use the values they are given" for line, name in _unsafe(tree)]
    unknown = sorted(jinja2.meta.find_undeclared_variables(tree) - given - set(env.globals))
    if unknown:
        shown = ", ".join(repr(u) for u in unknown)
        problems.append(f"{at(1)}: error[E122]: the template uses {shown}, which it is not given (docs/"
                        f"explanations.md lists what each template is given): {', '.join(sorted(given)[:20])}")
    for node in tree.find_all((jn.Include, jn.Import, jn.FromImport, jn.Extends)):
        template = getattr(node, "template", None)
        target = template.value if isinstance(template, jn.Const) else None
        if folder is None or not isinstance(target, str) or "/" in target or "\\" in target \
                or not (folder / target).is_file():
            problems.append(f"{at(node.lineno)}: error[E123]: a template may only include another template of "
                            f"its own folder, by name; {target!r} is not one")
    return problems
