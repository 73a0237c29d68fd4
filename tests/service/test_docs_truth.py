"""README and the OpenAPI document say what the code does: every problem code the service
can answer is listed (with its status) in both, and README's mounting snippet runs as
pasted."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from oauthvault.service.openapi import ERROR_CODES

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _codes_in_source() -> set[tuple[int, str]]:
    found = set()
    for path in (ROOT / "src" / "oauthvault").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        for status, code in re.findall(
            r"(?:problem_response|Problem|_vault_problem)\(\s*(\d{3}),\s*\"(\w+)\"", text
        ):
            found.add((int(status), code))
    return found


def test_every_code_the_service_answers_is_listed_with_its_status():
    in_source = _codes_in_source()
    assert len(in_source) >= 15
    for status, code in in_source:
        assert code in ERROR_CODES, code
        assert ERROR_CODES[code][0] == status, code
    for code, (status, _) in ERROR_CODES.items():
        assert re.search(rf"^\| `{code}` \| {status} \|", README, re.MULTILINE), code


def test_the_mounting_snippet_runs_as_pasted(tmp_path, key):
    section = README.split("### Mounting the flow in your own app", 1)[1]
    toml = section.split("```toml\n", 1)[1].split("```", 1)[0]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    (tmp_path / "oauthvault.toml").write_text(toml)
    (tmp_path / "app.py").write_text(code)
    check = """
from starlette.testclient import TestClient
from app import app
with TestClient(app) as client:
    refused = client.get("/oauth/google/connect", follow_redirects=False)
    started = client.get(
        "/oauth/google/connect?return_url=https://app.example.com/settings/",
        headers={"x-user-id": "u1"}, follow_redirects=False,
    )
print(refused.status_code, started.status_code, started.headers["location"].split("?")[0])
"""
    result = subprocess.run(
        [sys.executable, "-c", check],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={
            "PATH": "/usr/bin:/bin",
            "OAUTHVAULT_CONFIG": "oauthvault.toml",
            "OAUTH_ENCRYPTION_KEY": key,
            "DATABASE_URL": f"sqlite:///{tmp_path / 'vault.db'}",
        },
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["401", "302", "https://accounts.google.com/o/oauth2/v2/auth"]
