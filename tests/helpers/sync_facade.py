"""Drive an :class:`~oauthvault.AsyncOAuthTokenCache` from synchronous test code.

The storage contract (tests/vault/test_contract.py) is written once, against the sync vault's
interface; :class:`SyncFacade` gives the async vault that interface, so the same test bodies
run against both flavours.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from types import TracebackType
from typing import Any, Self

from oauthvault import AsyncOAuthTokenCache


class SyncFacade:
    """An ``AsyncOAuthTokenCache`` with the sync vault's calling convention.

    Every coroutine method (``store_tokens``, ``get_tokens``, ``list_connections``, ...) is
    run to completion on a private event loop, the same one for the facade's whole life (the
    async vault's connections belong to the loop that opened them); everything else
    (``backend_mode``, ``keyring``, ``database``, ...) is passed through.

    ``with SyncFacade(vault)`` opens the vault and closes it (``aclose``) and the loop.
    """

    def __init__(self, vault: AsyncOAuthTokenCache) -> None:
        self.vault = vault
        self._runner = asyncio.Runner()

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.vault, name)
        if not inspect.iscoroutinefunction(attribute):
            return attribute

        @functools.wraps(attribute)
        def run(*args: Any, **kwargs: Any) -> Any:
            return self._runner.run(attribute(*args, **kwargs))

        return run

    def open(self) -> None:
        self._runner.run(self.vault.open())

    def close(self) -> None:
        """``aclose`` the vault, then close the event loop."""
        try:
            self._runner.run(self.vault.aclose())
        finally:
            self._runner.close()

    def __enter__(self) -> Self:
        try:
            self.open()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SyncFacade({self.vault!r})"
