"""Data checks for src/oauthvault/providers/credentials.toml (the non-OAuth catalog).

Pure data: reads the TOML with tomllib and checks every entry against the schema rules
written at the top of that file. Needs no vault code.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[2]
CATALOG = ROOT / "src" / "oauthvault" / "providers" / "credentials.toml"
OAUTH_CATALOG = ROOT / "src" / "oauthvault" / "providers" / "providers.toml"

NAME_RE = re.compile(r"^[a-z0-9-]{1,50}$")
FIELD_RE = re.compile(r"^[a-z][a-z0-9_]{0,49}$")
PLACEHOLDER_RE = re.compile(r"\{([^{}]*)\}")
HEADER_NAME_RE = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
KINDS = {"api_key", "basic", "fields"}
TOP_KEYS = {
    "display_name",
    "auth",
    "api_base_url",
    "docs_url",
    "notes",
    "fields",
    "headers",
    "basic",
    "query",
    "verify",
    "connection_params",
    "rate_limit_headers",
    "rate_limit_reset",
}
REQUIRED_TOP = {"display_name", "auth", "api_base_url", "docs_url", "notes", "fields"}
FIELD_KEYS = {"name", "label", "secret", "pattern", "help_url", "example"}
PARAM_KEYS = {"label", "source", "required", "pattern", "example", "path", "extract"}
VERIFY_KEYS = {"method", "path", "ok"}


def _load() -> dict:
    with CATALOG.open("rb") as fh:
        return tomllib.load(fh)


DATA = _load()
ALL: dict = DATA.get("providers", {})
# The entries whose credential is used as it is: these rules are theirs. Minted entries
# (app, two_step) are checked by the loader, tests/oauth/test_app_tokens.py and
# tests/vault/test_minted_credentials.py.
PROVIDERS: dict = {name: e for name, e in ALL.items() if e.get("auth") in KINDS}
NAMES = sorted(PROVIDERS)
MINTED = sorted(set(ALL) - set(PROVIDERS))


def _placeholders(text: str) -> list[str]:
    return PLACEHOLDER_RE.findall(text)


def _formats(entry: dict) -> list[tuple[str, str]]:
    """Every (where, format string) of an entry that may hold placeholders."""
    out = [("api_base_url", entry["api_base_url"])]
    for key in ("headers", "basic", "query"):
        for k, v in entry.get(key, {}).items():
            out.append((f"{key}.{k}", v))
    if "verify" in entry:
        out.append(("verify.path", entry["verify"]["path"]))
    return out


def test_schema_version_and_size():
    assert DATA.get("schema_version") == 1
    assert set(DATA) == {"schema_version", "providers"}
    assert len(PROVIDERS) >= 60, len(PROVIDERS)


def test_no_collision_with_oauth_catalog():
    with OAUTH_CATALOG.open("rb") as fh:
        oauth = tomllib.load(fh).get("providers", {})
    clash = sorted(set(oauth) & set(ALL))
    assert not clash, clash


@pytest.mark.parametrize("name", MINTED)
def test_minted_entries_cite_their_docs_and_the_cross_check(name):
    e = ALL[name]
    assert e["auth"] in {"app", "two_step"}
    assert e["docs_url"].startswith("https://") and "\n" not in e["notes"]
    assert "Cross-checked with Nango's catalog" in e["notes"]


@pytest.mark.parametrize("name", NAMES)
def test_entry_shape(name):
    e = PROVIDERS[name]
    assert NAME_RE.fullmatch(name)
    assert REQUIRED_TOP <= set(e), REQUIRED_TOP - set(e)
    assert set(e) <= TOP_KEYS, set(e) - TOP_KEYS
    for key in ("display_name", "docs_url", "notes", "api_base_url"):
        assert isinstance(e[key], str) and e[key].strip(), key
    assert "\n" not in e["notes"]
    assert "Nango" in e["notes"]
    assert e["auth"] in KINDS
    assert e["docs_url"].startswith("https://")
    assert urlsplit(e["docs_url"]).hostname


@pytest.mark.parametrize("name", NAMES)
def test_base_url(name):
    url = PROVIDERS[name]["api_base_url"]
    assert url.startswith("https://"), url
    assert not url.endswith("/"), url
    assert "?" not in url and "#" not in url, url
    # the host, with placeholders replaced by a label, must be a plausible host name
    host = urlsplit(PLACEHOLDER_RE.sub("x", url)).hostname
    assert host and re.fullmatch(r"[a-z0-9.-]+", host), url


@pytest.mark.parametrize("name", NAMES)
def test_fields(name):
    e = PROVIDERS[name]
    fields = e["fields"]
    assert isinstance(fields, list) and fields
    names = [f["name"] for f in fields]
    assert len(names) == len(set(names)), names
    for f in fields:
        assert set(f) <= FIELD_KEYS, set(f) - FIELD_KEYS
        assert FIELD_RE.fullmatch(f["name"]), f["name"]
        assert isinstance(f["label"], str) and f["label"].strip()
        assert isinstance(f["secret"], bool)
        for opt in ("pattern", "help_url", "example"):
            if opt in f:
                assert isinstance(f[opt], str) and f[opt], opt
        if "pattern" in f:
            re.compile(f["pattern"])
        if "help_url" in f:
            assert f["help_url"].startswith("https://")
        if "example" in f and "pattern" in f and not f["secret"]:
            assert re.fullmatch(f["pattern"], f["example"]), (f["name"], f["example"])
    kind = e["auth"]
    if kind == "api_key":
        assert len(fields) == 1 and fields[0]["secret"] is True
    elif kind == "fields":
        assert len(fields) >= 2
    assert any(f["secret"] for f in fields), "no secret field"


@pytest.mark.parametrize("name", NAMES)
def test_how_the_credential_is_sent(name):
    e = PROVIDERS[name]
    kind = e["auth"]
    if kind == "basic":
        assert set(e["basic"]) == {"username", "password"}
        assert all(isinstance(v, str) for v in e["basic"].values())
    else:
        assert "basic" not in e
    for key in ("headers", "query"):
        table = e.get(key, {})
        assert isinstance(table, dict)
        for k, v in table.items():
            assert isinstance(v, str) and v, (key, k)
            if key == "headers":
                assert HEADER_NAME_RE.fullmatch(k), k
    # every secret field is sent somewhere
    secret = {f["name"] for f in e["fields"] if f["secret"]}
    used = set()
    for where, fmt in _formats(e):
        if where.startswith(("headers.", "basic.", "query.")):
            used.update(_placeholders(fmt))
    assert secret <= used, secret - used


@pytest.mark.parametrize("name", NAMES)
def test_placeholders_resolve(name):
    e = PROVIDERS[name]
    fields = {f["name"] for f in e["fields"]}
    params = set(e.get("connection_params", {}))
    assert not (fields & params), fields & params
    secret = {f["name"] for f in e["fields"] if f["secret"]}
    for where, fmt in _formats(e):
        assert fmt.count("{") == fmt.count("}"), (where, fmt)
        for ph in _placeholders(fmt):
            assert ph in fields or ph in params, (where, ph)
            if where in ("api_base_url", "verify.path"):
                assert ph not in secret, (where, ph)
                if where == "api_base_url":
                    assert ph in params, (where, ph)


@pytest.mark.parametrize("name", NAMES)
def test_connection_params(name):
    e = PROVIDERS[name]
    fields = {f["name"]: f for f in e["fields"]}
    url_params = set(_placeholders(e["api_base_url"]))
    if "verify" in e:
        url_params |= set(_placeholders(e["verify"]["path"]))
    for pname, p in e.get("connection_params", {}).items():
        assert FIELD_RE.fullmatch(pname), pname
        assert set(p) <= PARAM_KEYS, set(p) - PARAM_KEYS
        assert isinstance(p["label"], str) and p["label"]
        assert p["source"] in {"link", "credential"}
        if "required" in p:
            assert isinstance(p["required"], bool)
        if "pattern" in p:
            rx = re.compile(p["pattern"])
            assert p["pattern"].startswith("^") and p["pattern"].endswith("$")
            if "example" in p:
                assert rx.fullmatch(p["example"]), (pname, p["example"])
            # a URL parameter may never carry characters that change the URL's shape
            for bad in ("a/b", "a.b/c", "a?b", "a#b", "a@b", "a:b", "", "a b", "..", "a\\b"):
                assert not rx.fullmatch(bad), (pname, bad)
        if pname in url_params:
            assert "pattern" in p, f"{pname} is used in a URL and needs a pattern"
        if p["source"] == "credential":
            assert p["path"] in fields, p["path"]
            rx = re.compile(p["extract"])
            assert rx.groups == 1
        else:
            assert "path" not in p and "extract" not in p


@pytest.mark.parametrize("name", NAMES)
def test_verify(name):
    e = PROVIDERS[name]
    v = e.get("verify")
    if v is None:
        assert "verify" in e["notes"].lower() or "no " in e["notes"].lower()
        return
    assert set(v) <= VERIFY_KEYS, set(v) - VERIFY_KEYS
    assert v["method"] == "GET"
    assert v["path"].startswith("/")
    assert "ok" not in v or (isinstance(v["ok"], int) and 200 <= v["ok"] < 300)


@pytest.mark.parametrize("name", NAMES)
def test_nango_note_form(name):
    notes = PROVIDERS[name]["notes"]
    assert (
        notes.endswith("Cross-checked with Nango's catalog: agrees.")
        or "Not in Nango's catalog" in notes
        or ("Nango" in notes and "the docs say" in notes)
    ), notes
