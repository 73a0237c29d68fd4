"""The key file that keeps the embedded default's tokens readable across restarts."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from oauthvault.crypto.keyring import generate_key
from oauthvault.errors import ConfigError

__all__ = ["key_file_for", "load_or_create_key_file"]

logger = logging.getLogger("oauthvault.crypto")


def key_file_for(database_path: Path) -> Path:
    """The key file beside an SQLite database: ``oauthvault.db`` → ``oauthvault.key``."""
    return database_path.with_suffix(".key")


def load_or_create_key_file(path: Path) -> str:
    """Read the key ring text kept at ``path``, creating it (mode 0600) if absent.

    Raises:
        ConfigError: the file exists but cannot be read, or cannot be created.
    """
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return _create(path)
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError("OAUTH_ENCRYPTION_KEY", f"cannot read key file {path}: {error}") from None
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        logger.warning("Key file %s is readable by other users; run: chmod 600 %s", path, path)
    return text


def _create(path: Path) -> str:
    key = generate_key()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # O_EXCL: if another process created it first, use theirs rather than overwrite it.
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return load_or_create_key_file(path)
    except OSError as error:
        raise ConfigError(
            "OAUTH_ENCRYPTION_KEY", f"not set, and cannot create key file {path}: {error}"
        ) from None
    with os.fdopen(descriptor, "w", encoding="ascii") as file:
        file.write(key + "\n")
    logger.warning(
        "OAUTH_ENCRYPTION_KEY is not set: generated a key and saved it in %s (mode 0600). "
        "Back it up: tokens cannot be decrypted without it. In production set "
        "OAUTH_ENCRYPTION_KEY instead (`oauthvault keygen`).",
        path.resolve(),
    )
    return key
