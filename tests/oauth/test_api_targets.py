"""A caller's path and query join a provider's API base URL only when they cannot move the
request to another host or out of the base path; redirects only to the provider's hosts."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx
import pytest

from oauthvault.providers.api_targets import (
    REFUSAL_CODES,
    ApiTarget,
    TargetRefused,
    allows_redirect,
    build_url,
    credential_target,
    host_allowed,
    provider_target,
    request_url,
)
from oauthvault.providers.catalog import load_catalog
from oauthvault.providers.credentials import load_credential_catalog

GITLAB = ApiTarget.of("https://gitlab.com/api/v4", ["*.gitlab.com"])
GOOGLE = ApiTarget.of("https://gmail.googleapis.com", ["*.googleapis.com"])
DOUBLE = ApiTarget.of("http://127.0.0.1:8081/api")

# (raw path, code): every one refused before anything is sent.
HOSTILE = [
    # Absolute and scheme-relative URLs.
    ("//evil.com/x", "absolute_url"),
    ("//evil.com", "absolute_url"),
    ("/x", "absolute_url"),
    ("http://evil.com", "absolute_url"),
    ("https://evil.com/x", "absolute_url"),
    ("HTTP://EVIL.COM", "absolute_url"),
    ("http:evil.com", "absolute_url"),
    ("javascript:alert(1)", "absolute_url"),
    ("mailto:ana@evil.com", "absolute_url"),
    # Userinfo.
    ("@evil.com", "userinfo"),
    ("@evil.com/x", "userinfo"),
    ("user@evil.com", "userinfo"),
    ("%40evil.com", "userinfo"),
    ("x%40evil.com/y", "userinfo"),
    # Backslashes.
    ("\\evil.com", "backslash"),
    ("\\\\evil.com\\x", "backslash"),
    ("a/b\\..\\c", "backslash"),
    ("%5cevil.com", "backslash"),
    ("%5Cevil.com", "backslash"),
    ("a/%5c..%5cb", "backslash"),
    # Encoded separators.
    ("%2F%2Fevil.com", "encoded_separator"),
    ("%2f%2fevil.com", "encoded_separator"),
    ("%2Fetc", "encoded_separator"),
    ("v1%2Fadmin", "encoded_separator"),
    ("evil.com%3A443", "encoded_separator"),
    ("%2Eenv", "encoded_separator"),
    ("a%3Bb", "encoded_separator"),
    ("a/b%3Fx=1", "encoded_separator"),
    ("a/b%3fx=1", "encoded_separator"),
    ("a/b%23frag", "encoded_separator"),
    ("a/%2Fb", "encoded_separator"),
    ("a/b%2F", "encoded_separator"),
    ("a/b%2f%2fc", "encoded_separator"),
    # Double encoding.
    ("a/%252e%252e/b", "double_encoding"),
    ("a/%252E%252E%252Fb", "double_encoding"),
    ("a/%252f", "double_encoding"),
    ("a/%255c", "double_encoding"),
    ("a/%2500", "double_encoding"),
    # Dot segments, raw or encoded, any case.
    ("..", "dot_segment"),
    (".", "dot_segment"),
    ("../x", "dot_segment"),
    ("a/../../b", "dot_segment"),
    ("a/./b", "dot_segment"),
    ("a/..", "dot_segment"),
    ("..%2f..%2f", "dot_segment"),
    ("..%2F..%2Fetc", "dot_segment"),
    ("%2e%2e/", "dot_segment"),
    ("%2E%2E/x", "dot_segment"),
    (".%2E/", "dot_segment"),
    ("%2e./x", "dot_segment"),
    ("a/%2e", "dot_segment"),
    ("a/%2E%2e", "dot_segment"),
    ("a/b%2F..%2Fc", "dot_segment"),
    ("a/b%2f%2e%2e%2fc", "dot_segment"),
    ("a/..%3b/b", "dot_segment"),
    ("a/..%3Bx/b", "dot_segment"),
    ("a/..%20/b", "dot_segment"),
    ("a/%20.%20/b", "dot_segment"),
    # Path parameters.
    ("a;b/c", "path_parameter"),
    ("a/..;/b", "path_parameter"),
    ("a/b;jsessionid=x", "path_parameter"),
    # Empty segments.
    ("a//b", "empty_segment"),
    ("a/b//", "empty_segment"),
    # Controls, spaces, NUL: raw, encoded, and C1 controls encoded as UTF-8.
    ("%00", "control_character"),
    ("a/b%00.json", "control_character"),
    ("\x00", "control_character"),
    ("a\tb", "control_character"),
    ("a\rb", "control_character"),
    ("a\nb", "control_character"),
    ("a/b c", "control_character"),
    ("a/\x7f", "control_character"),
    ("a/b%0d%0aHost:%20evil.com", "control_character"),
    ("a/b%0A", "control_character"),
    ("a/%09", "control_character"),
    ("a/%7F", "control_character"),
    ("a/%C2%85", "control_character"),
    # Look-alike separators (compatibility forms).
    ("a/%EF%BC%8Fb", "unicode_separator"),
    ("a/%ef%bc%8f%ef%bc%8f", "unicode_separator"),
    ("a/%EF%BC%8E%EF%BC%8E", "unicode_separator"),
    ("a/%EF%BC%BCb", "unicode_separator"),
    ("a/%E2%80%A4%E2%80%A4", "unicode_separator"),
    ("a/%EF%BC%A0evil.com", "unicode_separator"),
    ("%EF%BC%8F%EF%BC%8Fevil.com", "unicode_separator"),
    # Characters a raw path never holds.
    ("a?b", "invalid_character"),
    ("a#b", "invalid_character"),
    ("a/<b>", "invalid_character"),
    ("a/[::1]", "invalid_character"),
    ("a/{x}", "invalid_character"),
    ("a/|b", "invalid_character"),
    ("a/\u00e9", "invalid_character"),
    ("a/\uff0fb", "invalid_character"),
    # Malformed percent-encoding.
    ("a/%", "bad_percent_encoding"),
    ("a/%2", "bad_percent_encoding"),
    ("a/%zz", "bad_percent_encoding"),
    ("%%32%65", "bad_percent_encoding"),
    # Length.
    ("a/" + "b" * 9000, "too_long"),
]

# (raw path, raw query): kept exactly.
LEGITIMATE = [
    ("gmail/v1/users/me/messages", "q=from%3Aana"),
    ("gmail/v1/users/me/messages", "q=from:ana is:unread".replace(" ", "+")),
    ("gmail/v1/users/me/messages/18c2a:batchModify", ""),
    ("v4/spreadsheets/1aB-_x:batchUpdate", ""),
    ("calendar/v3/calendars/ana@example.com/events", "maxResults=10"),
    ("calendar/v3/calendars/ana%40example.com/events", ""),
    ("projects/group%2Fproject/repository/files/dir%2Ffile.txt/raw", "ref=main"),
    ("repos/o/r/contents/dir%2Ffile", ""),
    ("repos/o/r/contents/dir/file.md", ""),
    ("v1.0/me/drive/root:/Documents/a%20b.txt:/content", ""),
    ("files/caf%C3%A9.txt", ""),
    ("files/%E6%97%A5%E6%9C%AC", ""),
    ("items/a.b.c/...", ""),
    ("items/.well", ""),
    ("items/x%3Ay", ""),
    ("items/x%3By", ""),
    ("items/x%2Ey", ""),
    ("items/x%25y", ""),
    ("search", "filter[status]=open&page[size]=2"),
    ("search", "q=a%26b&x=%2F%2Fevil.com&u=http://evil.com"),
    ("a/b/", ""),
    ("", ""),
    ("items/~user/$x/!y/*/'q'/(z)/+/,/=", ""),
]


@pytest.mark.parametrize(("path", "code"), HOSTILE)
def test_hostile_paths_are_refused_with_their_code(path: str, code: str) -> None:
    assert code in REFUSAL_CODES
    with pytest.raises(TargetRefused) as caught:
        build_url(GITLAB, path, "")
    assert caught.value.code == code
    assert "evil" not in caught.value.detail  # never echoes the path


def test_there_are_many_hostile_paths() -> None:
    assert len(HOSTILE) >= 40
    assert {code for _, code in HOSTILE} >= REFUSAL_CODES - {
        "host_not_allowed",
        "scheme_not_allowed",
        "bad_base_url",
        "redirect_refused",  # a library client's redirect (vault.http_client)
    }


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("/projects/1", "https://gitlab.com/api/v4/projects/1"),
        ("projects/1?per_page=5", "https://gitlab.com/api/v4/projects/1?per_page=5"),
        ("https://gitlab.com/api/v4/projects/1", "https://gitlab.com/api/v4/projects/1"),
        ("https://GITLAB.com:443/api/v4/projects", "https://gitlab.com/api/v4/projects"),
        ("", "https://gitlab.com/api/v4/"),
    ],
)
def test_a_client_url_below_the_base_url_is_kept(url: str, expected: str) -> None:
    assert request_url(GITLAB, url) == expected


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("//evil.example/x", "host_not_allowed"),
        ("http://gitlab.com/api/v4/x", "host_not_allowed"),
        ("https://gitlab.com:8443/api/v4/x", "host_not_allowed"),
        ("https://evil.example/api/v4/x", "host_not_allowed"),
        ("https://gitlab.com/api/v5/x", "host_not_allowed"),
        ("https://gitlab.com/api/v4", "host_not_allowed"),
        ("https://user@gitlab.com/api/v4/x", "userinfo"),
        ("http:x", "host_not_allowed"),
        ("../x", "dot_segment"),
        ("/a/../../x", "dot_segment"),
        ("//", "host_not_allowed"),
        ("/%2e%2e/x", "dot_segment"),
        ("https://gitlab.com/api/v4/a/%2e%2e/x", "dot_segment"),
        ("/a\\b", "backslash"),
    ],
)
def test_a_client_url_that_could_leave_the_api_is_refused(url: str, code: str) -> None:
    with pytest.raises(TargetRefused) as caught:
        request_url(GITLAB, url)
    assert caught.value.code == code


@pytest.mark.parametrize(("path", "query"), LEGITIMATE)
def test_legitimate_paths_are_kept_exactly(path: str, query: str) -> None:
    url = build_url(GITLAB, path, query)
    assert url == f"https://gitlab.com/api/v4/{path}" + (f"?{query}" if query else "")
    parts = httpx.URL(url)  # httpx sends it unchanged, encodings kept
    assert parts.host == "gitlab.com"
    assert parts.raw_path == f"/api/v4/{path}".encode() + (f"?{query}".encode() if query else b"")


def test_encoded_slashes_are_kept_after_the_first_segment_only() -> None:
    assert build_url(GITLAB, "projects/a%2Fb").endswith("/projects/a%2Fb")
    with pytest.raises(TargetRefused, match="encoded_separator"):
        build_url(GITLAB, "projects%2Fa/b")


def test_raw_bytes_from_the_asgi_scope() -> None:
    assert build_url(GOOGLE, b"gmail/v1/users/me/profile", b"a=1") == (
        "https://gmail.googleapis.com/gmail/v1/users/me/profile?a=1"
    )
    with pytest.raises(TargetRefused, match="invalid_character"):
        build_url(GOOGLE, "gmail/\xe9".encode("latin-1"))
    with pytest.raises(TargetRefused, match="invalid_character"):
        build_url(GOOGLE, b"gmail", b"q=\xc3\xa9")


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("a=1#frag", "invalid_character"),
        ("a=1 b", "control_character"),
        ("a=1\r\nHost: evil.com", "control_character"),
        ("a=\x00", "control_character"),
        ("q=\u00e9", "invalid_character"),
        ("q=" + "x" * 9000, "too_long"),
    ],
)
def test_hostile_queries_are_refused(query: str, code: str) -> None:
    with pytest.raises(TargetRefused) as caught:
        build_url(GOOGLE, "gmail/v1", query)
    assert caught.value.code == code


def test_every_built_url_keeps_the_base_origin() -> None:
    for target in (GITLAB, GOOGLE, DOUBLE):
        for path, query in LEGITIMATE:
            parts = urlsplit(build_url(target, path, query))
            base = urlsplit(target.base_url)
            assert (parts.scheme, parts.netloc) == (base.scheme, base.netloc)
            assert parts.path.startswith(f"{base.path}/")


@pytest.mark.parametrize(
    ("base", "code"),
    [
        ("http://api.github.com", "scheme_not_allowed"),
        ("ftp://api.github.com", "scheme_not_allowed"),
        ("http://10.0.0.1", "scheme_not_allowed"),
        ("https://{shop}.myshopify.com", "bad_base_url"),
        ("https://ana@api.github.com", "bad_base_url"),
        ("https://api.github.com/", "bad_base_url"),
        ("https://api.github.com?x=1", "bad_base_url"),
        ("https://api.github.com#x", "bad_base_url"),
        ("https://api.github.com:99999", "bad_base_url"),
        ("/relative", "bad_base_url"),
    ],
)
def test_bad_base_urls_are_refused(base: str, code: str) -> None:
    with pytest.raises(TargetRefused) as caught:
        ApiTarget.of(base)
    assert caught.value.code == code


def test_loopback_is_only_an_http_loopback_base() -> None:
    assert DOUBLE.loopback
    assert ApiTarget.of("http://localhost:9/x").loopback
    assert ApiTarget.of("http://[::1]:9").hosts == ("::1",)
    assert not ApiTarget.of("https://127.0.0.1:9").loopback
    assert not GITLAB.loopback
    with pytest.raises(TargetRefused, match="bad_base_url"):
        ApiTarget("https://gitlab.com", ("gitlab.com",), loopback=True)
    with pytest.raises(TargetRefused, match="bad_base_url"):
        ApiTarget("https://gitlab.com", ("evil.com",))


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("gitlab.com", True),
        ("GitLab.COM.", True),
        ("api.gitlab.com", True),
        ("a.b.gitlab.com", False),
        ("evilgitlab.com", False),
        ("gitlab.com.evil.com", False),
        ("ev@il.gitlab.com", False),
        ("ev%2eil.gitlab.com", False),
        ("", False),
        ("*.gitlab.com", False),
    ],
)
def test_host_allowed(host: str, allowed: bool) -> None:
    assert host_allowed(GITLAB, host) is allowed


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("/api/v4/next?page=2", "https://gitlab.com/api/v4/next?page=2"),
        ("next", "https://gitlab.com/api/v4/projects/next"),
        ("https://uploads.gitlab.com/f#x", "https://uploads.gitlab.com/f"),
        ("https://gitlab.com:443/x", "https://gitlab.com:443/x"),
        ("//evil.com/x", None),
        ("https://evil.com/", None),
        ("http://gitlab.com/x", None),
        ("https://gitlab.com@evil.com/", None),
        ("https://ana:pw@gitlab.com/", None),
        ("https://gitlab.com:8443/x", None),
        ("https://a.b.gitlab.com/", None),
        ("/\\evil.com", None),
        ("https:\\\\evil.com", None),
        ("/%5cevil.com", None),
        ("https://gitlab.com/\r\nx", None),
        ("https://gitlab.com:x/", None),
        ("https://%67itlab.com/", None),
        ("ftp://gitlab.com/", None),
        ("", None),
    ],
)
def test_redirects_only_to_the_providers_hosts(location: str, expected: str | None) -> None:
    assert allows_redirect(GITLAB, location, "https://gitlab.com/api/v4/projects/1") == expected


def test_a_loopback_double_redirects_on_its_own_origin_only() -> None:
    here = "http://127.0.0.1:8081/api/x"
    assert allows_redirect(DOUBLE, "/api/y", here) == "http://127.0.0.1:8081/api/y"
    assert allows_redirect(DOUBLE, "http://127.0.0.1:9999/", here) is None
    assert allows_redirect(DOUBLE, "http://localhost:8081/", here) is None
    assert allows_redirect(DOUBLE, "http://gitlab.com/", here) is None


def test_targets_from_the_catalogs() -> None:
    catalog = load_catalog()
    google = next(spec for spec in catalog.values() if "*.googleapis.com" in spec.api_hosts)
    target = provider_target(google, {})
    assert target is not None
    assert host_allowed(target, "gmail.googleapis.com")
    assert not target.loopback
    for spec in catalog.values():
        if spec.api_base_url is not None and not spec.api_placeholders:
            made = provider_target(spec, {})
            assert made is not None
            assert made.base_url.startswith("https://")
    credentials = load_credential_catalog()
    plain = next(s for s in credentials.values() if "{" not in s.api_base_url)
    assert credential_target(plain, {}, {}).base_url == plain.api_base_url


def test_another_api_host_of_the_provider_can_be_aimed_at_and_no_other():
    from oauthvault.providers.api_targets import ApiTarget, TargetRefused, build_url

    box = ApiTarget.of("https://api.box.com/2.0", ("upload.box.com",))
    upload = box.on_host("upload.box.com")
    assert upload.base_url == "https://upload.box.com"
    assert build_url(upload, "api/2.0/files/content", "") == (
        "https://upload.box.com/api/2.0/files/content"
    )
    assert upload.hosts[1] == "api.box.com"  # a redirect back to the API host is still allowed
    assert box.on_host("API.BOX.COM") is box
    google = ApiTarget.of("https://www.googleapis.com", ("*.googleapis.com",))
    assert google.on_host("gmail.googleapis.com").base_url == "https://gmail.googleapis.com"
    for hostile in (
        "evil.example",
        "upload.box.com.evil.example",
        "upload.box.com:8443",
        "user@upload.box.com",
        "127.0.0.1",
        "",
        "a.b.googleapis.com.evil",
    ):
        with pytest.raises(TargetRefused) as refused:
            (box if "box" in hostile or "." not in hostile else google).on_host(hostile)
        assert refused.value.code == "host_not_allowed", hostile
    with pytest.raises(TargetRefused):
        google.on_host("a.b.googleapis.com")  # a wildcard stands for one label only
