"""The catalog's API base URLs (``api_base_url``, ``api_hosts``): every one is https and
fills, with each parameter's example, into a URL on a safe host; tables may override them
(http only on loopback); bad values are refused, naming the setting."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from oauthvault import ConfigError
from oauthvault.providers import load_catalog, load_provider_configs
from oauthvault.providers.catalog import parse_catalog
from oauthvault.providers.spec import api_host_matches, placeholders_in

# A DNS host name: lower-case labels, at least two, no port, no user info.
SAFE_HOST = re.compile(r"^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]*[a-z0-9]$")
# Identity-only entries: no REST API of their own to call with the user's token.
WITHOUT_API = {"apple", "yahoo", "adobe"}

ENTRY = """
schema_version = 1
[providers.acme]
display_name = "Acme"
authorization_endpoint = "https://acme.example/authorize"
token_endpoint = "https://acme.example/token"
default_scopes = ["read"]
scope_separator = " "
token_endpoint_auth_method = "client_secret_basic"
pkce = true
refresh_tokens = "static"
docs_url = "https://acme.example/docs"
notes = "A made-up provider."
"""
PARAMS = """
[providers.acme.connection_params.site]
label = "Site"
source = "link"
pattern = "^[a-z0-9-]{1,30}$"
[providers.acme.connection_params.org]
label = "Organization"
source = "identity"
path = "org.id"
pattern = "^[0-9]{1,12}$"
[providers.acme.connection_params.loose]
label = "No pattern"
source = "token"
path = "loose"
"""


def example_values(spec):
    return {
        p.name: p.example or p.default for p in spec.connection_params if p.example or p.default
    }


@pytest.mark.parametrize("name", sorted(load_catalog()))
def test_every_api_base_url_fills_into_an_https_url_on_a_safe_host(name):
    spec = load_catalog()[name]
    if name in WITHOUT_API:
        assert spec.api_base_url is None and spec.api_hosts == ()
        return
    assert spec.api_base_url is not None, f"{name} has no api_base_url"
    assert spec.api_base_url.startswith("https://") and not spec.api_base_url.endswith("/")
    for placeholder in placeholders_in(spec.api_base_url):
        param = spec.param(placeholder.split(".", 1)[0])
        assert param is not None and param.pattern, (name, placeholder)
        assert param.example or param.default, (name, placeholder, "needs an example")
    url = spec.api_base_for(example_values(spec))
    assert url is not None and "{" not in url and "}" not in url, (name, url)
    parts = urlsplit(url)
    assert parts.scheme == "https", (name, url)
    assert parts.hostname is not None and SAFE_HOST.match(parts.hostname), (name, url)
    assert parts.port is None and parts.username is None and not parts.query, (name, url)
    assert parts.netloc == parts.hostname, (name, url)
    assert spec.allows_api_host(parts.hostname, base_url=url)
    assert not spec.allows_api_host("evil.example", base_url=url)
    for host in spec.api_hosts:
        assert host != "*" and SAFE_HOST.match(host.removeprefix("*.")), (name, host)
        assert host.count(".") >= (2 if host.startswith("*.") else 1), (name, host)


def test_only_identity_entries_lack_an_api_base_url():
    catalog = load_catalog()
    assert {name for name, spec in catalog.items() if spec.api_base_url is None} == WITHOUT_API
    assert catalog["google"].api_base_url == "https://www.googleapis.com"
    assert catalog["microsoft"].api_base_url == "https://graph.microsoft.com"
    assert catalog["github"].api_base_url == "https://api.github.com"
    assert catalog["slack"].api_base_url == "https://slack.com/api"
    assert catalog["atlassian"].api_base_url == "https://api.atlassian.com"
    assert catalog["hubspot"].api_base_url == "https://api.hubapi.com"


def test_placeholders_fill_by_the_endpoints_rules():
    catalog = load_catalog()
    salesforce = catalog["salesforce"]
    # A value the provider sends as an https origin fills the URL with its host.
    given = {"hostname": "login.salesforce.com", "instance_url": "https://acme.my.salesforce.com"}
    assert salesforce.api_base_for(given) == "https://acme.my.salesforce.com"
    assert salesforce.api_placeholders == ("instance_url",)
    for bad in ("https://evil.example", "https://acme.my.salesforce.com.evil.example", "x/y"):
        with pytest.raises(ConfigError) as caught:
            salesforce.api_base_for({"instance_url": bad})
        assert caught.value.setting == "providers.salesforce.instance_url"
    with pytest.raises(ConfigError) as caught:
        salesforce.api_base_for({"hostname": "login.salesforce.com"})
    assert caught.value.setting == "providers.salesforce.instance_url"
    # The endpoints fill without the token's values: the API URL keeps its template.
    filled = salesforce.with_placeholders(hostname="acme.my.salesforce.com")
    assert filled.token_endpoint == "https://acme.my.salesforce.com/services/oauth2/token"
    assert filled.api_base_url == "https://{instance_url}"

    shop = {"shop": "acme.myshopify.com"}
    assert catalog["shopify"].api_base_for(shop) == "https://acme.myshopify.com/admin/api"
    zendesk = catalog["zendesk"].api_base_for({"subdomain": "acme"})
    assert zendesk == "https://acme.zendesk.com/api/v2"
    with pytest.raises(ConfigError):
        catalog["zendesk"].api_base_for({"subdomain": "evil.example/x"})
    # A host table picks the host per value.
    intercom = catalog["intercom"]
    assert intercom.api_base_for({"region": "EU"}) == "https://api.eu.intercom.io"
    assert intercom.api_base_for({}) == "https://api.intercom.io"  # the default region
    with pytest.raises(ConfigError):
        intercom.api_base_for({"region": "MARS"})
    # An identity value (known once the connection is made) may fill it too.
    basecamp = catalog["basecamp"].api_base_for({"account_id": "123"})
    assert basecamp == "https://3.basecampapi.com/123"
    # A provider's extra API hosts; a wildcard stands for exactly one label.
    google = catalog["google"]
    base = google.api_base_for({})
    assert google.allows_api_host("gmail.googleapis.com", base_url=base)
    assert google.allows_api_host("www.googleapis.com", base_url=base)
    assert not google.allows_api_host("a.b.googleapis.com", base_url=base)
    assert not google.allows_api_host("googleapis.com.evil.example", base_url=base)


def test_api_host_matches_one_label_for_a_wildcard():
    assert api_host_matches("uploads.github.com", "UPLOADS.github.com.")
    assert not api_host_matches("uploads.github.com", "x.uploads.github.com")
    assert api_host_matches("*.googleapis.com", "gmail.googleapis.com")
    assert not api_host_matches("*.googleapis.com", "googleapis.com")
    assert not api_host_matches("*.googleapis.com", ".googleapis.com")
    assert not api_host_matches("*.googleapis.com", "a.b.googleapis.com")
    assert not api_host_matches("*.googleapis.com", "evilgoogleapis.com")


def test_a_catalog_entry_may_declare_its_api():
    spec = parse_catalog(
        ENTRY
        + 'api_base_url = "https://{site}.acme.example/api/{org}"\n'
        + 'api_hosts = ["files.acme.example", "*.tenants.acme.example"]\n'
        + PARAMS
    )["acme"]
    assert spec.api_hosts == ("files.acme.example", "*.tenants.acme.example")
    assert spec.api_placeholders == ("site", "org")
    assert spec.placeholders == ()  # the endpoints wait for nothing
    url = spec.api_base_for({"site": "eu", "org": "42"})
    assert url == "https://eu.acme.example/api/42"
    assert spec.allows_api_host("eu.acme.example", base_url=url)
    assert spec.allows_api_host("t1.tenants.acme.example", base_url=url)
    assert not spec.allows_api_host("acme.example", base_url=url)


@pytest.mark.parametrize(
    ("lines", "key"),
    [
        ('api_base_url = "http://api.acme.example"', "api_base_url"),
        ('api_base_url = "http://127.0.0.1:8080"', "api_base_url"),  # not in the catalog
        ('api_base_url = "https://api.acme.example/"', "api_base_url"),
        ('api_base_url = "https://api.acme.example/v1?key=1"', "api_base_url"),
        ('api_base_url = "https://api.acme.example#v1"', "api_base_url"),
        ('api_base_url = "https://user:pw@api.acme.example"', "api_base_url"),
        ('api_base_url = "api.acme.example"', "api_base_url"),
        ("api_base_url = 5", "api_base_url"),
        ('api_base_url = "https://{client_id}.acme.example"', "api_base_url"),
        ('api_base_url = "https://{tenant}.acme.example"', "api_base_url"),
        ('api_base_url = "https://{site.api}"', "api_base_url"),
        ('api_base_url = "https://{loose}"', "connection_params.loose.pattern"),
        ('api_hosts = ["files.acme.example"]', "api_hosts"),
        ('api_base_url = "https://a.acme.example"\napi_hosts = ["*"]', "api_hosts[0]"),
        ('api_base_url = "https://a.acme.example"\napi_hosts = ["*.com"]', "api_hosts[0]"),
        ('api_base_url = "https://a.acme.example"\napi_hosts = ["x.com", "*"]', "api_hosts[1]"),
        ('api_base_url = "https://a.acme.example"\napi_hosts = ["Files.acme.example"]', None),
        ('api_base_url = "https://a.acme.example"\napi_hosts = ["a..example"]', "api_hosts[0]"),
        ('api_base_url = "https://a.acme.example"\napi_hosts = ["*.*.acme.example"]', None),
        ('api_base_url = "https://a.acme.example"\napi_hosts = ["a.example:443"]', None),
        ('api_base_url = "https://a.acme.example"\napi_hosts = ["localhost"]', None),
        ('api_base_url = "https://a.acme.example"\napi_hosts = "x.example"', "api_hosts"),
        ('api_base_url = "https://a.acme.example"\napi_hosts = ["x.example", "x.example"]', None),
    ],
)
def test_bad_api_settings_are_refused_naming_the_setting(lines, key):
    document = ENTRY.replace('notes = "A made-up provider."', f'notes = "x"\n{lines}') + PARAMS
    with pytest.raises(ConfigError) as caught:
        parse_catalog(document)
    setting = caught.value.setting
    prefix = "providers.toml: providers.acme."
    expected = prefix + (key or "api_hosts")
    assert setting == expected or (key is None and setting.startswith(expected)), setting


def test_an_identity_value_fills_only_the_api_url():
    document = ENTRY.replace(
        'token_endpoint = "https://acme.example/token"',
        'token_endpoint = "https://{org}.acme.example/token"',
    )
    with pytest.raises(ConfigError) as caught:
        parse_catalog(document + PARAMS)
    assert caught.value.setting == "providers.toml: providers.acme.token_endpoint"


@pytest.fixture
def write(tmp_path: Path):
    def write(text: str) -> Path:
        path = tmp_path / "oauthvault.toml"
        path.write_text(text)
        return path

    return write


def test_a_table_overrides_the_api_with_loopback_http_allowed(write):
    path = write(
        """
        [providers.github]
        client_id = "id"
        client_secret = "x"
        api_base_url = "http://127.0.0.1:8080/github"
        api_hosts = []

        [providers.zendesk]
        client_id = "id"
        client_secret = "x"
        subdomain = "acme"

        [providers.google]
        client_id = "id"
        client_secret = "x"
        api_hosts = ["gmail.googleapis.com"]

        [providers.salesforce]
        client_id = "id"
        client_secret = "x"
        api_base_url = "https://gateway.example.com/{instance_url}"

        [providers.corp]
        issuer = "https://login.corp.example"
        client_id = "id"
        client_secret = "x"
        api_base_url = "https://api.corp.example/v1"
        api_hosts = ["files.corp.example"]

        [providers.local]
        authorization_endpoint = "http://127.0.0.1:9000/auth"
        token_endpoint = "http://127.0.0.1:9000/token"
        api_base_url = "http://localhost:9000/api"
        client_id = "id"
        client_secret = "x"
        """
    )
    configs = load_provider_configs(path, {})
    github = configs["github"].spec
    assert github.api_base_url == "http://127.0.0.1:8080/github" and github.api_hosts == ()
    # The app's fixed link values fill the API URL at load time, like the endpoints.
    assert configs["zendesk"].spec.api_base_url == "https://acme.zendesk.com/api/v2"
    google = configs["google"].spec
    assert google.api_base_url == "https://www.googleapis.com"
    assert google.api_hosts == ("gmail.googleapis.com",)
    salesforce = configs["salesforce"].spec
    given = {"instance_url": "https://acme.my.salesforce.com"}
    assert salesforce.api_base_for(given) == "https://gateway.example.com/acme.my.salesforce.com"
    corp = configs["corp"]
    assert corp.spec is None and corp.overrides.api_base_url == "https://api.corp.example/v1"
    assert corp.overrides.api_hosts == ("files.corp.example",)
    assert configs["local"].spec.api_base_url == "http://localhost:9000/api"


@pytest.mark.parametrize(
    ("table", "lines", "key"),
    [
        ("github", 'api_base_url = "http://api.github.com"', "api_base_url"),
        ("github", 'api_base_url = "http://10.0.0.1:8080"', "api_base_url"),
        ("github", 'api_base_url = "https://api.github.com/"', "api_base_url"),
        ("github", 'api_base_url = "https://api.github.com?x=1"', "api_base_url"),
        ("github", 'api_base_url = "https://{client_id}.example.com"', "api_base_url"),
        ("zendesk", 'subdomain = "acme"\napi_base_url = "https://{tenant}.zendesk.com"', None),
        ("github", 'api_hosts = ["*"]', "api_hosts[0]"),
        ("corp", 'api_hosts = ["files.corp.example"]', "api_hosts"),
        ("corp", 'api_base_url = "https://{site}.corp.example"', "api_base_url"),
        ("local", 'api_base_url = "http://api.local.example"', "api_base_url"),
        ("local", 'api_hosts = ["files.local.example"]', "api_hosts"),
    ],
)
def test_bad_api_overrides_name_the_setting(write, table, lines, key):
    head = {
        "corp": 'issuer = "https://login.corp.example"\n',
        "local": 'authorization_endpoint = "https://l.example/a"\n'
        'token_endpoint = "https://l.example/t"\n',
    }.get(table, "")
    path = write(f'[providers.{table}]\n{head}client_id = "i"\nclient_secret = "x"\n{lines}\n')
    with pytest.raises(ConfigError) as caught:
        load_provider_configs(path, {})
    assert caught.value.setting == f"{path}: providers.{table}.{key or 'api_base_url'}"
