"""The parsed-policy cache: an unchanged policy file is not parsed again, an edited one is, and nothing
in the cache folder can do more than be ignored."""

from __future__ import annotations

import dataclasses
import os
import pickle
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from policydsl import PolicyError, cache, load_policy, parse_file, syntax
from policydsl import parser as parser_module
from tests.conftest import MINI_BODY, MINI_HEADER, POLICY_FILE


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    place = tmp_path / "cache"
    place.mkdir(mode=0o700)
    session = Path(os.environ["POLICYDSL_CACHE_DIR"])  # the tests' own (conftest.py)
    for tables in session.glob("lark-*.tables"):  # built once (seconds) for the whole session
        shutil.copy(tables, place)
    monkeypatch.setenv("POLICYDSL_CACHE_DIR", str(place))
    monkeypatch.delenv("POLICYDSL_CACHE", raising=False)
    cache.folder.cache_clear()
    yield place
    cache.folder.cache_clear()
    for tables in place.glob("lark-*.tables"):
        if session.is_dir() and not (session / tables.name).exists():
            shutil.copy(tables, session)


def same(a: Any, b: Any) -> bool:
    """Structural equality of two ASTs (their nodes compare by identity)."""
    if dataclasses.is_dataclass(a) and not isinstance(a, type):
        return type(a) is type(b) and all(same(getattr(a, f.name), getattr(b, f.name))
                                          for f in dataclasses.fields(a))
    if isinstance(a, tuple | list):
        return type(a) is type(b) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return type(b) is dict and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def entries(place: Path) -> list[Path]:
    return sorted(place.glob("*.ast"))


def no_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(text: str, file: str = "<policy>") -> Any:
        raise AssertionError("parsed although the cache holds this file")
    monkeypatch.setattr(parser_module, "parse", refuse)


def test_unchanged_file_comes_from_the_cache(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fresh = parse_file(POLICY_FILE)
    assert len(entries(folder)) == 1
    assert oct(stat.S_IMODE(folder.stat().st_mode)) == "0o700"
    no_parsing(monkeypatch)
    kept = parse_file(POLICY_FILE)
    assert kept is not fresh and same(kept, fresh)
    assert kept.source == POLICY_FILE.read_text(encoding="utf-8-sig")


def test_every_repository_policy_round_trips(folder: Path) -> None:
    root = POLICY_FILE.parent.parent
    files = [*root.glob("policies/*.policy"), *root.glob("tests/policies/*.policy"), *root.glob("examples/**/*.policy")]
    assert len(files) >= 3
    for path in files:
        try:
            fresh = parser_module.parse(path.read_text(encoding="utf-8-sig"), str(path))
        except PolicyError:
            continue
        parse_file(path)
        assert same(cache.load(path.read_text(encoding="utf-8-sig"), str(path)), fresh), path


def test_an_edited_file_is_parsed_again(folder: Path, tmp_path: Path) -> None:
    path = tmp_path / "mini.policy"
    path.write_text(MINI_HEADER + MINI_BODY, encoding="utf-8")
    assert [r.id for r in load_policy(path).categories] == ["c1"]
    path.write_text(MINI_HEADER + MINI_BODY.replace("category c1", "category c9"), encoding="utf-8")
    assert [r.id for r in load_policy(path).categories] == ["c9"]
    assert len(entries(folder)) == 2


def test_the_file_name_is_part_of_the_key(folder: Path, tmp_path: Path) -> None:
    """Diagnostics name the file: the same text under another name is not taken from the first."""
    a, b = tmp_path / "a.policy", tmp_path / "b.policy"
    for path in (a, b):
        path.write_text(MINI_HEADER + MINI_BODY, encoding="utf-8")
    assert parse_file(a).header.span.file == str(a)
    assert parse_file(b).header.span.file == str(b)


def test_syntax_errors_are_not_kept(folder: Path, tmp_path: Path) -> None:
    path = tmp_path / "bad.policy"
    path.write_text(MINI_HEADER + "category c1 \"一\"\n  requires income 低于\n", encoding="utf-8")
    for _ in range(2):
        with pytest.raises(PolicyError, match=r"bad\.policy:"):
            parse_file(path)
    assert entries(folder) == []


class Planted:
    """What an attacker might put in the cache: unpickling it would run a command."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, ("touch planted-ran",))


def test_a_planted_file_runs_nothing_and_is_replaced(folder: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    parse_file(POLICY_FILE)
    [entry] = entries(folder)
    entry.write_bytes(pickle.dumps(Planted()))
    policy = parse_file(POLICY_FILE)
    assert policy.header.id == "anju_2019"
    assert not (tmp_path / "planted-ran").exists()
    assert pickle.loads(entry.read_bytes()).header.id == "anju_2019"  # written again, correctly


@pytest.mark.parametrize("damage", [b"", b"\x80\x05garbage", b"not a pickle at all"])
def test_a_damaged_file_is_parsed_afresh(folder: Path, damage: bytes) -> None:
    parse_file(POLICY_FILE)
    [entry] = entries(folder)
    entry.write_bytes(damage)
    assert parse_file(POLICY_FILE).header.id == "anju_2019"


def test_something_else_than_an_ast_is_ignored(folder: Path) -> None:
    parse_file(POLICY_FILE)
    [entry] = entries(folder)
    entry.write_bytes(pickle.dumps({"header": "not an AST"}))
    assert parse_file(POLICY_FILE).header.id == "anju_2019"


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="permissions are checked on POSIX")
def test_a_folder_others_can_write_to_is_not_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    monkeypatch.setenv("POLICYDSL_CACHE_DIR", str(shared))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "own"))
    cache.folder.cache_clear()
    try:
        assert cache.folder() == tmp_path / "own" / "policydsl"  # the next choice, not the shared folder
    finally:
        cache.folder.cache_clear()


def test_cache_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLICYDSL_CACHE", "0")
    monkeypatch.setenv("POLICYDSL_CACHE_DIR", str(tmp_path / "cache"))
    cache.folder.cache_clear()
    try:
        assert cache.folder() is None
        assert cache.load_tables("lark-anything") is None
        parse_file(POLICY_FILE)
        assert not (tmp_path / "cache").exists()
    finally:
        cache.folder.cache_clear()


def test_old_entries_are_pruned(folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache, "KEEP", 3)
    text = MINI_HEADER + MINI_BODY
    kept = []
    for i in range(5):
        path = tmp_path / f"p{i}.policy"
        path.write_text(text, encoding="utf-8")
        parse_file(path)
        kept.append(folder / (cache._key(text, str(path)) + ".ast"))
        os.utime(kept[-1], (1000 + i, 1000 + i))  # written in this order, whatever the clock's resolution
    assert entries(folder) == sorted(kept[2:])


def _fresh_parser() -> Any:
    """syntax._parser() as a new process would make it: from the kept tables, or built and kept."""
    syntax._parser.cache_clear()
    try:
        return syntax._parser()
    finally:
        syntax._parser.cache_clear()


def test_the_grammars_tables_are_kept_and_give_the_same_trees(folder: Path) -> None:
    for tables in folder.glob("lark-*.tables"):
        tables.unlink()
    built = _fresh_parser()  # built (seconds) and kept in this empty folder
    [tables] = folder.glob("lark-*.tables")
    assert isinstance(cache.load_tables(tables.name.removesuffix(".tables")), dict)
    loaded = _fresh_parser()  # read back from the kept tables
    assert loaded is not built
    text = POLICY_FILE.read_text(encoding="utf-8-sig")
    assert loaded.parse(text) == built.parse(text)


def test_planted_grammar_tables_run_nothing(folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Lark's own cache unpickles whatever file it finds; the kept tables are read as plain data only."""
    monkeypatch.chdir(tmp_path)
    assert cache.folder() == folder
    (folder / "lark-planted.tables").write_bytes(pickle.dumps(Planted()))
    assert cache.load_tables("lark-planted") is None
    assert not (tmp_path / "planted-ran").exists()


def test_another_policys_tree_under_this_key_is_not_used(folder: Path, tmp_path: Path) -> None:
    path = tmp_path / "mini.policy"
    path.write_text(MINI_HEADER + MINI_BODY, encoding="utf-8")
    text = path.read_text(encoding="utf-8")
    other = syntax.parse(MINI_HEADER + MINI_BODY.replace("category c1", "category c7"), str(path))
    (folder / (cache._key(text, str(path)) + ".ast")).write_bytes(pickle.dumps(other))
    assert [r.id for r in load_policy(path).categories] == ["c1"]


def test_entries_of_another_engine_are_not_used(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    parse_file(POLICY_FILE)
    monkeypatch.setattr(cache, "_engine", lambda: b"another grammar, parser or version")
    assert cache.load(POLICY_FILE.read_text(encoding="utf-8-sig"), str(POLICY_FILE)) is None


def test_nothing_is_kept_where_the_parsing_code_cannot_be_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Installed in a zip file, say: entries could not be told apart from a newer engine's."""
    monkeypatch.setenv("POLICYDSL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(cache, "_engine", lambda: None)
    cache.folder.cache_clear()
    try:
        assert cache.folder() is None
    finally:
        cache.folder.cache_clear()


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="permissions are checked on POSIX")
@pytest.mark.parametrize(("mode", "used"), [(0o777, False), (0o1777, True), (0o755, True)])
def test_a_folder_someone_else_could_swap_is_not_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: int,
                                                      used: bool) -> None:
    """A private folder inside one that others may write to (and that is not sticky, as /tmp is) could be
    renamed away and replaced between the check and the use."""
    parent = tmp_path / "shared"
    parent.mkdir()
    parent.chmod(mode)
    monkeypatch.setenv("POLICYDSL_CACHE_DIR", str(parent / "policydsl"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "own"))
    cache.folder.cache_clear()
    try:
        assert (cache.folder() == parent / "policydsl") is used
    finally:
        cache.folder.cache_clear()


def test_the_command_line_uses_the_cache(folder: Path, tmp_path: Path) -> None:
    env = {**os.environ, "POLICYDSL_CACHE_DIR": str(folder)}
    command = [sys.executable, "-c", "from cli.main import run; run()", "check", str(POLICY_FILE)]
    for _ in range(2):
        done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
        assert done.returncode == 0, done.stderr
    assert len(entries(folder)) == 1


def test_a_cached_policy_is_loaded_without_importing_the_parser(folder: Path) -> None:
    """What makes the cache worth having: Lark is not even imported when the AST is there."""
    env = {**os.environ, "POLICYDSL_CACHE_DIR": str(folder)}
    probe = ("import sys; from policydsl import load_policy; load_policy(sys.argv[1]); "
             "print('lark' in sys.modules)")
    seen = [subprocess.run([sys.executable, "-c", probe, str(POLICY_FILE)], capture_output=True, text=True, env=env,
                           check=True).stdout.strip() for _ in range(2)]
    assert seen == ["True", "False"]
