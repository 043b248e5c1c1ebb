"""Amendments: a policy that ``extends`` another is merged with it into one policy before checking.

The amending file states only what changes: new dated parameter values, rules replaced or removed by
id, new rules, inputs or definitions. Every node keeps the span of the file it came from, so
diagnostics and traces point into the right file.
"""

from __future__ import annotations

import dataclasses
import difflib
from pathlib import Path

from . import nodes as n
from .diagnostics import Diagnostic, PolicyError

MAX_DEPTH = 10  # policies extending policies: a chain longer than this is almost surely a loop


def _kind_word(kind: str) -> str:
    return {"define": "definition", "status_precondition": "status precondition"}.get(kind, kind)


def resolve(policy: n.Policy, parse_file: object, seen: tuple[str, ...] = ()) -> n.Policy:
    """The policy merged with the one it extends (recursively); a policy that extends none is returned as is."""
    extends = policy.header.extends
    if extends is None:
        return policy
    here = Path(policy.header.span.file).resolve()
    parent_path = (here.parent / extends).resolve()
    if str(parent_path) in seen or len(seen) > MAX_DEPTH:
        raise PolicyError([Diagnostic("E131", "error", f"'{extends}' extends, directly or not, this very policy",
                                      policy.header.extends_span or policy.header.span,
                                      "a policy cannot amend itself")], policy.sources)
    if not parent_path.is_file():
        nearby = [p.name for p in parent_path.parent.glob("*.policy")] if parent_path.parent.is_dir() else []
        close = difflib.get_close_matches(parent_path.name, nearby, n=1)
        raise PolicyError([Diagnostic("E131", "error", f"the policy it extends, '{extends}', does not exist "
                                      f"(looked for {parent_path})", policy.header.extends_span or policy.header.span,
                                      f"did you mean '{close[0]}'?" if close else
                                      "give the file name relative to this file")], policy.sources)
    parent = resolve(parse_file(parent_path), parse_file, (*seen, str(here)))  # type: ignore[operator]
    return merge(parent, policy)


def merge(parent: n.Policy, child: n.Policy) -> n.Policy:
    """One policy: the parent's statements changed by the child's (see the module docstring)."""
    problems: list[Diagnostic] = []
    rules = list(parent.rules)
    definitions = list(parent.definitions)

    properties = list(parent.properties)
    removed: dict[str, n.Span] = dict(parent.removed)

    def ids_of(kind: str) -> list[str]:
        if kind == "define":
            return [d.name for d in definitions]
        if kind == "property":
            return [p.name for p in properties]
        return [r.id for r in rules if r.kind == kind]

    def find(kind: str, ident: str) -> int | None:
        if kind == "define":
            return next((i for i, d in enumerate(definitions) if d.name == ident), None)
        if kind == "property":
            return next((i for i, p in enumerate(properties) if p.name == ident), None)
        return next((i for i, r in enumerate(rules) if r.id == ident and r.kind == kind), None)

    for a in child.amendments:
        index = find(a.kind, a.id)
        if index is None:
            known = ids_of(a.kind)
            close = difflib.get_close_matches(a.id, known, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            problems.append(Diagnostic("E130", "error", f"'{parent.header.id}' has no {_kind_word(a.kind)} "
                                       f"'{a.id}' to {a.action}", a.span,
                                       f"{hint}its {_kind_word(a.kind)} ids are: {', '.join(known) or 'none'}"))
            continue
        if a.action == "remove":
            removed[a.id] = a.span
        if a.kind == "property":
            del properties[index]
        elif a.kind == "define":
            if a.action == "replace":
                assert isinstance(a.node, n.Definition)
                definitions[index] = a.node
            else:
                del definitions[index]
        elif a.action == "replace":
            assert isinstance(a.node, n.Rule)
            rules[index] = a.node
        else:
            del rules[index]
    # new rules go after the last of their kind, so categories stay together and in order
    for rule in child.rules:
        last = max((i for i, r in enumerate(rules) if r.kind == rule.kind), default=len(rules) - 1)
        rules.insert(last + 1, rule)

    parameters = {p.name: p for p in parent.parameters}
    for p in child.parameters:
        inherited = parameters.get(p.name)
        if p.type is None and inherited is not None:
            dates = {v.start for v in p.values}
            values = sorted([*(v for v in inherited.values if v.start not in dates), *p.values],
                            key=lambda v: v.start)
            parameters[p.name] = dataclasses.replace(inherited, values=tuple(values),
                                                     source=p.source or inherited.source)
        elif inherited is not None:
            problems.append(Diagnostic("E103", "error", f"parameter '{p.name}' is already declared in "
                                       f"'{parent.header.id}'", p.span,
                                       "to give it new dated values, leave out its type: 'parameter "
                                       f"{p.name}' followed by 'from … = …' lines"))
        else:
            parameters[p.name] = p
    if problems:
        raise PolicyError(problems, {**parent.sources, **child.sources})

    ph, ch = parent.header, child.header
    header = dataclasses.replace(
        ch, title=ch.title or ph.title, title_en=ch.title_en or ph.title_en,
        jurisdiction=ch.jurisdiction or ph.jurisdiction, in_force=ch.in_force or ph.in_force,
        source=ch.source or ph.source)
    return dataclasses.replace(
        child, header=header, parameters=tuple(parameters.values()), enums=(*parent.enums, *child.enums),
        records=(*parent.records, *child.records), inputs=(*parent.inputs, *child.inputs),
        definitions=(*definitions, *child.definitions), reports=(*parent.reports, *child.reports),
        rules=tuple(rules), properties=(*properties, *child.properties), amendments=(),
        source=child.source, sources={**parent.sources, **child.sources}, removed=removed)
