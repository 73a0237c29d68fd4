#!/usr/bin/env python3
"""Generate the blocking twin of each asyncio module: one hand-written source per I/O pair.

The async module is the source; its sync twin is written by this tool and checked in, with a
"generated, do not edit" header. The transform works on the concrete syntax tree (libcst),
so comments and layout survive:

- ``async def``/``async with``/``async for`` lose ``async``; ``await x`` becomes ``x``;
- names and modules are renamed by :data:`RENAMES` and :data:`MODULES` (``AsyncX`` → ``X``
  by default), and ``Awaitable[T]`` becomes ``T``; strings get the same renames, except the
  module docstring, which speaks of both flavours;
- ``asyncio.to_thread(f, *args)`` becomes ``f(*args)``;
- the few places that really differ are marked in the source::

      if True:  # ASYNC
          ...what the async flavour does...
      else:
          ...what the sync flavour does (may be absent: nothing)...

Then ``ruff check --fix`` drops the imports the sync flavour no longer uses and ``ruff
format`` lays the result out.

Usage: scripts/async_to_sync.py [--check] [FILE...]
    With no FILE, every pair in :data:`PAIRS`. ``--check`` writes nothing and fails (exit 1)
    when a checked-in twin differs from what its source generates (a hand edit, or a source
    changed without running this tool); ``scripts/test`` runs it so.
"""

from __future__ import annotations

import argparse
import difflib
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import libcst as cst

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "oauthvault"

#: (async source, generated sync twin), relative to src/oauthvault.
PAIRS: list[tuple[str, str]] = [
    ("cache/redis_async.py", "cache/redis.py"),
    ("storage/postgres_runner_async.py", "storage/postgres_runner.py"),
    ("storage/postgres_async.py", "storage/postgres.py"),
    ("vault/pending_records_async.py", "vault/pending_records.py"),
    ("vault/api_client_async.py", "vault/api_client.py"),
    ("vault/credentials_async.py", "vault/credentials.py"),
    ("vault/async_vault.py", "vault/sync_vault.py"),
    ("connect/state_async.py", "connect/state.py"),
]

#: Names renamed besides the default (a leading ``Async`` dropped from a class name).
RENAMES: dict[str, str] = {
    "aclose": "close",
    "__aenter__": "__enter__",
    "__aexit__": "__exit__",
    "__aiter__": "__iter__",
    "__anext__": "__next__",
    "anext": "next",
    "asynccontextmanager": "contextmanager",
    "aioredis": "redis",
    "refresh_grant_async": "refresh_grant",
    "revoke_grant_async": "revoke_grant",
    "discover_async": "discover",
    "run_async": "run_sync",
    "async_auth_flow": "sync_auth_flow",
}

#: Dotted attribute names replaced whole.
ATTRIBUTES: dict[str, str] = {
    "asyncio.sleep": "time.sleep",
    "asyncio.Lock": "threading.Lock",
    "asyncio.Event": "threading.Event",
}

#: Modules renamed in imports (an oauthvault module ending in ``_async`` loses the suffix).
MODULES: dict[str, str] = {
    "redis.asyncio": "redis",
    "redis.asyncio.cluster": "redis.cluster",
    "redis.asyncio.retry": "redis.retry",
    "oauthvault.vault.async_vault": "oauthvault.vault.sync_vault",
}

#: What the generated twins import in place of ``asyncio`` when they need it.
EXTRA_IMPORTS = ("import threading\n", "import time\n")

_ASYNC_NAME = re.compile(r"^Async([A-Z]\w*)$")
_WORD = re.compile(r"\b\w+\b")
_AWAITABLES = {"Awaitable", "Coroutine"}


def rename(name: str) -> str:
    if name in RENAMES:
        return RENAMES[name]
    match = _ASYNC_NAME.match(name)
    if match:
        return match.group(1)
    return name


def rename_module(module: str) -> str:
    if module in MODULES:
        return MODULES[module]
    if module.startswith("redis.asyncio."):
        return "redis." + module.removeprefix("redis.asyncio.")
    if module.startswith("oauthvault.") and module.endswith("_async"):
        return module.removesuffix("_async")
    return module


def _rename_words(text: str) -> str:
    return _WORD.sub(lambda match: rename(match.group(0)), text)


def _dotted(node: cst.BaseExpression) -> str | None:
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute):
        head = _dotted(node.value)
        return None if head is None else f"{head}.{node.attr.value}"
    return None


def _expression(dotted: str) -> cst.BaseExpression:
    return cst.parse_expression(dotted)


def _is_async_marker(node: cst.If) -> bool:
    body = node.body
    if not isinstance(body, cst.IndentedBlock):
        return False
    comment = body.header.comment
    return comment is not None and comment.value.strip() == "# ASYNC"


class Unasync(cst.CSTTransformer):
    """The async → sync rewrite of one module."""

    def __init__(self) -> None:
        super().__init__()
        self._module_docstring: cst.CSTNode | None = None

    def visit_Module(self, node: cst.Module) -> None:
        # The module docstring speaks of both flavours (it is copied as written).
        first = node.body[0] if node.body else None
        if isinstance(first, cst.SimpleStatementLine) and isinstance(first.body[0], cst.Expr):
            self._module_docstring = first.body[0].value

    def leave_FunctionDef(
        self, original: cst.FunctionDef, updated: cst.FunctionDef
    ) -> cst.FunctionDef:
        return updated.with_changes(
            asynchronous=None, name=updated.name.with_changes(value=rename(updated.name.value))
        )

    def leave_With(self, original: cst.With, updated: cst.With) -> cst.With:
        return updated.with_changes(asynchronous=None)

    def leave_For(self, original: cst.For, updated: cst.For) -> cst.For:
        return updated.with_changes(asynchronous=None)

    def leave_CompFor(self, original: cst.CompFor, updated: cst.CompFor) -> cst.CompFor:
        return updated.with_changes(asynchronous=None)

    def leave_Await(self, original: cst.Await, updated: cst.Await) -> cst.BaseExpression:
        inner = updated.expression
        if isinstance(inner, cst.Call | cst.Attribute | cst.Name | cst.Subscript):
            return inner  # `(await x.y()).z` → `x.y().z`: the parentheses are not needed
        return inner.with_changes(lpar=updated.lpar, rpar=updated.rpar)

    def leave_Name(self, original: cst.Name, updated: cst.Name) -> cst.Name:
        return updated.with_changes(value=rename(updated.value))

    def leave_Attribute(
        self, original: cst.Attribute, updated: cst.Attribute
    ) -> cst.BaseExpression:
        dotted = _dotted(original)
        if dotted in ATTRIBUTES:
            return _expression(ATTRIBUTES[dotted])
        attr = updated.attr.with_changes(value=rename(updated.attr.value))
        return updated.with_changes(attr=attr)

    def leave_Subscript(
        self, original: cst.Subscript, updated: cst.Subscript
    ) -> cst.BaseExpression:
        name = _dotted(original.value)
        if name is not None and name.rsplit(".", 1)[-1] in _AWAITABLES:
            last = updated.slice[-1].slice
            if isinstance(last, cst.Index):
                return last.value  # Awaitable[T] → T, Coroutine[Any, Any, T] → T
        return updated

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        if _dotted(original.func) == "asyncio.to_thread":
            function, *arguments = updated.args
            return cst.Call(func=function.value, args=arguments)
        return updated

    def leave_If(
        self, original: cst.If, updated: cst.If
    ) -> cst.BaseStatement | cst.FlattenSentinel[cst.BaseStatement] | cst.RemovalSentinel:
        if not _is_async_marker(original):
            return updated
        orelse = updated.orelse
        if orelse is None:
            return cst.RemovalSentinel.REMOVE
        if not isinstance(orelse, cst.Else) or not isinstance(orelse.body, cst.IndentedBlock):
            raise ValueError("an `if True:  # ASYNC` block takes a plain `else:` block, no elif")
        return cst.FlattenSentinel(orelse.body.body)

    def leave_ImportFrom(self, original: cst.ImportFrom, updated: cst.ImportFrom) -> cst.ImportFrom:
        module = _dotted(original.module) if original.module is not None else None
        if module is None:
            return updated
        names = updated.names
        if not isinstance(names, cst.ImportStar):
            names = [  # `RedisCluster as AsyncRedisCluster` became `RedisCluster as RedisCluster`
                alias.with_changes(asname=None)
                if alias.asname is not None
                and isinstance(alias.asname.name, cst.Name)
                and alias.asname.name.value == _dotted(alias.name)
                else alias
                for alias in names
            ]
        return updated.with_changes(module=_expression(rename_module(module)), names=names)

    def leave_Import(
        self, original: cst.Import, updated: cst.Import
    ) -> cst.Import | cst.RemovalSentinel:
        names = []
        for alias in original.names:
            module = rename_module(_dotted(alias.name) or "")
            if module == "asyncio":
                continue  # the twin imports time and threading instead (EXTRA_IMPORTS)
            asname = alias.asname
            if asname is not None and isinstance(asname.name, cst.Name):
                if rename(asname.name.value) == module:
                    asname = None  # `import redis.asyncio as aioredis` → `import redis`
            names.append(alias.with_changes(name=_expression(module), asname=asname))
        if not names:
            return cst.RemovalSentinel.REMOVE
        names[-1] = names[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
        return updated.with_changes(names=names)

    def leave_SimpleString(
        self, original: cst.SimpleString, updated: cst.SimpleString
    ) -> cst.SimpleString:
        if original is self._module_docstring:
            return updated
        return updated.with_changes(value=_rename_words(updated.value))


def _dedupe_imports(module: cst.Module) -> cst.Module:
    seen: set[str] = set()
    body = []
    for statement in module.body:
        if isinstance(statement, cst.SimpleStatementLine) and isinstance(
            statement.body[0], cst.Import
        ):
            code = module.code_for_node(statement).strip()
            if code in seen:
                continue
            seen.add(code)
        body.append(statement)
    return module.with_changes(body=body)


def _header(source: str) -> str:
    return (
        f"# WARNING: generated from {source} by scripts/async_to_sync.py: do not edit.\n"
        f"# Edit {source}, then run scripts/async_to_sync.py (scripts/test checks it).\n"
    )


def _add_extra_imports(code: str) -> str:
    """Put ``import threading``/``import time`` after ``from __future__`` (ruff removes
    the ones the twin does not use)."""
    marker = "from __future__ import annotations\n"
    if marker in code:
        return code.replace(marker, marker + "\n" + "".join(EXTRA_IMPORTS), 1)
    return "".join(EXTRA_IMPORTS) + code


def generate(source: Path) -> str:
    """The sync twin of ``source`` as text, formatted."""
    tree = cst.parse_module(source.read_text())
    code = _dedupe_imports(tree.visit(Unasync())).code
    code = _header(source.relative_to(PACKAGE).as_posix()) + _add_extra_imports(code)
    return _ruff(code)


def _ruff(code: str) -> str:
    ruff = Path(sys.executable).with_name("ruff")
    command = str(ruff) if ruff.exists() else "ruff"
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "oauthvault_twin.py"
        path.write_text(code)
        config = ["--config", str(ROOT / "pyproject.toml")]
        subprocess.run(  # drop unused imports, sort the rest
            [command, "check", *config, "--fix", "--quiet", "--select", "F401,I001", str(path)],
            check=False,
            capture_output=True,
        )
        subprocess.run([command, "format", *config, "--quiet", str(path)], check=True)
        # A name the twin does not define (an asyncio call no rule maps) fails here, not
        # when the twin first runs.
        undefined = subprocess.run(
            [command, "check", *config, "--quiet", "--select", "F821", str(path)],
            check=False,
            capture_output=True,
            text=True,
        )
        if undefined.returncode != 0:
            raise SystemExit(f"error: the generated twin uses undefined names:\n{undefined.stdout}")
        return path.read_text()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="fail if a twin is out of date")
    parser.add_argument("files", nargs="*", help="async sources (default: every pair)")
    args = parser.parse_args(argv)
    pairs = [(PACKAGE / a, PACKAGE / s) for a, s in PAIRS]
    if args.files:
        wanted = {Path(f).resolve() for f in args.files}
        pairs = [(a, s) for a, s in pairs if a.resolve() in wanted]
    stale = []
    for source, target in pairs:
        text = generate(source)
        current = target.read_text() if target.exists() else ""
        if text == current:
            continue
        if args.check:
            stale.append(target)
            diff = difflib.unified_diff(
                current.splitlines(keepends=True),
                text.splitlines(keepends=True),
                str(target.relative_to(ROOT)),
                f"generated from {source.relative_to(ROOT)}",
                n=1,
            )
            sys.stdout.writelines(list(diff)[:60])
        else:
            target.write_text(text)
            print(f"wrote {target.relative_to(ROOT)}")
    if stale:
        names = ", ".join(str(t.relative_to(ROOT)) for t in stale)
        print(
            f"error: {names} differ from what their async source generates: edit the async "
            "source (never the generated twin) and run scripts/async_to_sync.py",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
