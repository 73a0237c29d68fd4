"""The OpenAPI document is the truth: schemathesis, with every check and every phase
(examples, coverage, fuzzing, stateful), against the live service (real PostgreSQL, Redis
and OpenID provider), finds nothing. Its summary line is printed (``FIGURES …``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

# The document and the service are the same on every Python: checked once.
pytestmark = pytest.mark.once

SCHEMATHESIS = Path(sys.executable).parent / "st"
CONFIG = Path(__file__).with_name("schemathesis.toml")


@pytest.mark.slow
def test_schemathesis_finds_nothing(env, tmp_path, pg):
    report = tmp_path / "report"
    command = [
        str(SCHEMATHESIS),
        "--config-file",
        str(CONFIG),
        "run",
        f"{env.base_url}/openapi.json",
        "--checks",
        "all",
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--max-examples",
        "40",
        "--seed",
        "1",
        "--continue-on-failure",
        "--generation-database",
        "none",
        "--max-redirects",
        "0",
        "--no-color",
        "--header",
        f"Authorization: Bearer {env.api_key}",
        "--report",
        "junit",
        "--report-dir",
        str(report),
    ]
    result = subprocess.run(
        command, capture_output=True, text=True, check=False, timeout=600, cwd=tmp_path
    )
    (tmp_path / "output.txt").write_text(result.stdout + result.stderr)
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    summary = next((line for line in reversed(lines) if line.startswith("=")), "(no summary)")
    cases = next((line.strip() for line in lines if " generated, " in line), "(no count)")
    print(f"FIGURES schemathesis {cases}; {summary.strip('= ')}")
    assert result.returncode == 0, result.stdout[-12000:] + result.stderr[-2000:]
    assert "failure" not in summary and "error" not in summary, summary


def test_405_names_every_method_the_path_takes(env):
    with env.api() as api:
        answer = api.request("PATCH", "/v1/connections")
    assert answer.status_code == 405
    assert answer.headers["allow"] == "GET, PUT, DELETE"
    assert answer.headers["content-type"] == "application/problem+json"


def test_a_body_that_is_not_utf8_is_invalid_request(env):
    with env.api() as api:
        answer = api.put(
            "/v1/connections", content=b"\xff", headers={"content-type": "application/json"}
        )
    assert answer.status_code == 422
    assert answer.json()["code"] == "invalid_request"


def test_the_document_declares_the_bearer_scheme_and_problem_bodies(env):
    spec = httpx.get(f"{env.base_url}/openapi.json").json()
    assert spec["components"]["securitySchemes"]["apiKey"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key (`oauthvault apikey create`).",
    }
    token = spec["paths"]["/v1/connections/token"]["get"]
    assert token["security"] == [{"apiKey": []}]
    assert set(token["responses"]) >= {"200", "401", "403", "404", "409", "422", "503"}
    assert "application/problem+json" in token["responses"]["404"]["content"]
    assert "HTTPValidationError" not in spec["components"]["schemas"]


@pytest.mark.slow  # Chromium
def test_the_docs_pages_work_offline_in_a_browser(env):
    """Swagger UI and ReDoc render from the package: any request leaving 127.0.0.1 is
    aborted (and recorded), and both pages still show the operations. Swagger UI asks for
    nothing outside; ReDoc only for the image of its "API docs by Redocly" badge."""
    from playwright.sync_api import sync_playwright

    chromium = Path("/usr/bin/chromium")
    assert chromium.exists(), "Chromium is required (scripts/test installs it)"
    outside: list[str] = []

    def only_loopback(route):  # type: ignore[no-untyped-def]
        if route.request.url.startswith(env.base_url):
            route.continue_()
        else:
            outside.append(f"{route.request.resource_type} {route.request.url}")
            route.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.route("**/*", only_loopback)
            page.goto(f"{env.base_url}/docs")
            page.get_by_text("/v1/connections/token").first.wait_for(timeout=15_000)
            assert page.locator(".opblock").count() >= 10
            assert page.locator("button.authorize").count() == 1  # the Bearer scheme
            assert outside == []
            page.goto(f"{env.base_url}/redoc")
            page.get_by_text("/v1/connections/token").first.wait_for(timeout=15_000)
        finally:
            browser.close()
    assert all(request.startswith("image https://cdn.redoc.ly/") for request in outside)
