"""The packaged provider catalog loads, is consistent, and fills its URL templates safely."""

from __future__ import annotations

import dataclasses
from urllib.parse import urlsplit

import pytest

import oauthvault.providers
from oauthvault import ConfigError
from oauthvault.providers import ProviderSpec, load_catalog
from oauthvault.providers.catalog import parse_catalog
from oauthvault.providers.spec import PLACEHOLDERS

URL_FIELDS = (
    "authorization_endpoint",
    "token_endpoint",
    "revocation_endpoint",
    "userinfo_endpoint",
)

GOOD_ENTRY = """
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


def test_flows_all_is_exact_and_sorted():
    public = {name for name in dir(oauthvault.providers) if not name.startswith("_")}
    modules = {
        name for name in public if type(getattr(oauthvault.providers, name)).__name__ == "module"
    }
    assert sorted(oauthvault.providers.__all__) == oauthvault.providers.__all__
    assert set(oauthvault.providers.__all__) == public - modules


def test_every_catalog_entry_loads():
    catalog = load_catalog()
    assert len(catalog) >= 20
    for name in ("google", "microsoft", "github", "slack", "apple", "gitlab", "atlassian"):
        assert name in catalog
    for name, spec in catalog.items():
        assert isinstance(spec, ProviderSpec)
        assert spec.name == name
        assert spec.display_name
        assert spec.refresh_tokens in ("none", "static", "rotating")
        assert spec.scope_separator in (" ", ",")
        for field in URL_FIELDS:
            url = getattr(spec, field)
            if url is not None:
                assert urlsplit(url).scheme == "https", (name, field)
        assert (spec.revocation_endpoint is None) == (spec.revocation_method is None), name
        for placeholder in spec.placeholders:
            param = spec.param(placeholder)
            assert param is not None and param.pattern, name
            # A callback value fills only the URLs used after the callback, and has a default.
            assert param.source == "link" or (param.source == "callback" and param.default), name
        assert set(PLACEHOLDERS) == {"client_id"}


def test_catalog_is_parsed_once_and_handed_out_as_a_fresh_dict():
    first, second = load_catalog(), load_catalog()
    assert first is not second
    assert first["google"] is second["google"]
    first.pop("google")
    assert "google" in load_catalog()


def test_google_asks_for_offline_access_and_consent():
    google = load_catalog()["google"]
    assert google.extra_authorize_params["access_type"] == "offline"
    assert google.extra_authorize_params["prompt"] == "consent"
    assert google.issuer == "https://accounts.google.com"
    assert google.pkce is True


def test_microsoft_default_scopes_include_offline_access():
    for name in ("microsoft", "microsoft-tenant"):
        assert "offline_access" in load_catalog()[name].default_scopes


def test_slack_separates_scopes_with_commas():
    assert load_catalog()["slack"].scope_separator == ","


def test_apple_secret_is_generated():
    apple = load_catalog()["apple"]
    assert apple.client_secret_kind == "apple_es256_jwt"
    assert apple.extra_authorize_params["response_mode"] == "form_post"


def test_specs_are_immutable():
    google = load_catalog()["google"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        google.token_endpoint = "https://evil.example/token"  # type: ignore[misc]
    with pytest.raises(TypeError):
        google.extra_authorize_params["prompt"] = "none"  # type: ignore[index]
    assert isinstance(google.default_scopes, tuple)
    assert hash(google) == hash(load_catalog()["google"])


def test_placeholders_fill_every_url():
    spec = load_catalog()["microsoft-tenant"]
    assert spec.placeholders == ("tenant",)
    filled = spec.with_placeholders(tenant="72f988bf-86f1-41af-91ab-2d7cd011db47")
    tenant_url = "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47"
    assert filled.authorization_endpoint == f"{tenant_url}/oauth2/v2.0/authorize"
    assert filled.token_endpoint == f"{tenant_url}/oauth2/v2.0/token"
    assert filled.issuer == f"{tenant_url}/v2.0"
    assert filled.placeholders == ()
    assert spec.placeholders == ("tenant",)  # the catalog entry is untouched

    zendesk = load_catalog()["zendesk"].with_placeholders(subdomain="acme")
    assert zendesk.token_endpoint == "https://acme.zendesk.com/oauth/tokens"
    assert zendesk.revocation_endpoint is not None
    assert zendesk.revocation_endpoint.startswith("https://acme.zendesk.com/")
    shopify = load_catalog()["shopify"].with_placeholders(
        shop="my-shop.myshopify.com", client_id="ignored"
    )
    assert shopify.authorization_endpoint == "https://my-shop.myshopify.com/admin/oauth/authorize"


def test_client_id_fills_revocation_urls():
    github = load_catalog()["github"]
    assert github.revocation_endpoint is not None
    assert "{client_id}" in github.revocation_endpoint
    filled = github.with_placeholders(client_id="Iv1.abc/def")
    assert filled.revocation_endpoint == "https://api.github.com/applications/Iv1.abc%2Fdef/grant"
    with pytest.raises(ConfigError) as caught:
        github.with_placeholders()
    assert caught.value.setting == "providers.github.client_id"


def test_missing_placeholder_is_named():
    for name, placeholder in (("microsoft-tenant", "tenant"), ("zendesk", "subdomain")):
        with pytest.raises(ConfigError) as caught:
            load_catalog()[name].with_placeholders()
        assert caught.value.setting == f"providers.{name}.{placeholder}"
        assert "required" in caught.value.problem


def test_unknown_placeholder_is_rejected():
    with pytest.raises(ConfigError) as caught:
        load_catalog()["google"].with_placeholders(tenant="contoso")
    assert caught.value.setting == "providers.google.tenant"


@pytest.mark.parametrize(
    "shop",
    [
        "evil.com",
        "acme.myshopify.com.evil.com",
        "evil.com/acme.myshopify.com",
        "a@evil.com",
        "acme.myshopify.com:444",
        "ACME.myshopify.com\n",
    ],
)
def test_a_connection_value_cannot_move_a_url_to_another_host(shop):
    with pytest.raises(ConfigError) as caught:
        load_catalog()["shopify"].with_placeholders(shop=shop)
    assert caught.value.setting == "providers.shopify.shop"
    assert shop not in str(caught.value)


@pytest.mark.parametrize(
    "value",
    ["evil.example/", "evil.example#", "a b", "x@evil.example", "..", "a..b", "-acme", "", "é"],
)
def test_placeholder_values_cannot_leave_their_host_or_path(value):
    with pytest.raises(ConfigError) as caught:
        load_catalog()["zendesk"].with_placeholders(subdomain=value)
    assert caught.value.setting == "providers.zendesk.subdomain"


def test_a_well_formed_document_parses():
    specs = parse_catalog(GOOD_ENTRY)
    assert specs["acme"].default_scopes == ("read",)
    assert specs["acme"].access_token_lifetime is None


def replace_line(key, line):
    lines = [
        (line if line is not None else "") if text.startswith(f"{key} =") else text
        for text in GOOD_ENTRY.splitlines()
    ]
    return "\n".join(lines)


@pytest.mark.parametrize(
    ("document", "setting"),
    [
        (GOOD_ENTRY + 'scopes = ["x"]\n', "providers.toml: providers.acme.scopes"),
        (replace_line("token_endpoint", None), "providers.toml: providers.acme.token_endpoint"),
        (replace_line("notes", None), "providers.toml: providers.acme.notes"),
        (replace_line("pkce", 'pkce = "yes"'), "providers.toml: providers.acme.pkce"),
        (
            replace_line("refresh_tokens", 'refresh_tokens = "sometimes"'),
            "providers.toml: providers.acme.refresh_tokens",
        ),
        (
            replace_line("token_endpoint", 'token_endpoint = "http://acme.example/token"'),
            "providers.toml: providers.acme.token_endpoint",
        ),
        (
            replace_line("token_endpoint", 'token_endpoint = "https://{tenant}.acme.example/t"'),
            "providers.toml: providers.acme.token_endpoint",
        ),
        (GOOD_ENTRY + 'placeholders = ["tenant"]\n', "providers.toml: providers.acme.placeholders"),
        (
            GOOD_ENTRY + 'revocation_method = "rfc7009"\n',
            "providers.toml: providers.acme.revocation_method",
        ),
        (
            GOOD_ENTRY
            + 'revocation_endpoint = "https://acme.example/r"\nrevocation_method = "custom"\n',
            "providers.toml: providers.acme.revocation_note",
        ),
        (
            GOOD_ENTRY + "access_token_lifetime = 0\n",
            "providers.toml: providers.acme.access_token_lifetime",
        ),
        (
            GOOD_ENTRY + 'extra_authorize_params = { state = "fixed" }\n',
            "providers.toml: providers.acme.extra_authorize_params.state",
        ),
        (
            replace_line("default_scopes", 'default_scopes = ["a b"]'),
            "providers.toml: providers.acme.default_scopes[0]",
        ),
        (
            GOOD_ENTRY.replace("schema_version = 1", "schema_version = 2"),
            "providers.toml: schema_version",
        ),
        (
            GOOD_ENTRY.replace("providers.acme", "providers.Acme_Corp"),
            "providers.toml: providers.Acme_Corp",
        ),
        ("schema_version = 1\nproviders = 3\n", "providers.toml: providers"),
        (GOOD_ENTRY + "= broken", "providers.toml"),
    ],
)
def test_bad_catalog_entries_name_provider_and_key(document, setting):
    with pytest.raises(ConfigError) as caught:
        parse_catalog(document)
    assert caught.value.setting == setting
    assert str(caught.value).startswith(setting)


def test_readme_lists_every_catalog_key_and_no_other():
    from pathlib import Path

    from oauthvault.providers.catalog import CATALOG_KEYS

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme.split("### Catalog schema", 1)[1].split("\n### ", 1)[0]
    listed = {
        line.split("|")[1].strip().strip("`")
        for line in section.splitlines()
        if line.startswith("| `")
    }
    assert listed == set(CATALOG_KEYS)


def test_every_entry_uses_known_keys_with_valid_values():
    import tomllib
    from importlib import resources

    from oauthvault.providers.catalog import CATALOG_KEYS, CATALOG_REQUIRED

    text = resources.files("oauthvault.providers").joinpath("providers.toml").read_text()
    for name, table in tomllib.loads(text)["providers"].items():
        assert set(table) <= CATALOG_KEYS, (name, set(table) - CATALOG_KEYS)
        assert CATALOG_REQUIRED <= set(table), (name, CATALOG_REQUIRED - set(table))
        assert table["docs_url"].startswith("https://"), name
    # Values are checked by the loader itself: it raises on the first bad one.
    assert len(load_catalog()) == len(tomllib.loads(text)["providers"])
    with pytest.raises(ConfigError) as caught:
        parse_catalog(GOOD_ENTRY + 'refresh_tokens_typo = "x"\n')
    assert "refresh_tokens_typo" in caught.value.setting


def test_zoho_token_side_urls_follow_the_callbacks_accounts_server():
    """Zoho's callback names the user's data centre (accounts-server, an https origin):
    the token, refresh and revocation URLs take its host, the authorization URL the link's
    domain; a connection without it (made before it was kept) uses accounts.<domain>."""
    zoho = load_catalog()["zoho"]
    eu = zoho.with_placeholders(domain="zoho.com", accounts_server="https://accounts.zoho.eu")
    assert eu.authorization_endpoint == "https://accounts.zoho.com/oauth/v2/auth"
    assert eu.token_endpoint == "https://accounts.zoho.eu/oauth/v2/token"
    assert eu.revocation_endpoint == "https://accounts.zoho.eu/oauth/v2/token/revoke"
    ca = zoho.with_placeholders(domain="zoho.com", accounts_server="https://accounts.zohocloud.ca")
    assert ca.token_endpoint == "https://accounts.zohocloud.ca/oauth/v2/token"
    older = zoho.with_placeholders(domain="zoho.in")
    assert older.token_endpoint == "https://accounts.zoho.in/oauth/v2/token"


@pytest.mark.parametrize(
    "server",
    [
        "https://accounts.zoho.eu.evil.example",
        "https://evil.example",
        "https://accounts.zoho.eu@evil.example",
        "https://accounts.zoho.eu/",
        "https://accounts.zoho.eu:8443",
        "http://accounts.zoho.eu",
        "accounts.zoho.eu",
        "https://accounts.zohocloud.eu",
    ],
)
def test_zoho_accounts_server_is_only_one_of_zohos_accounts_hosts(server):
    with pytest.raises(ConfigError) as caught:
        load_catalog()["zoho"].with_placeholders(domain="zoho.com", accounts_server=server)
    assert caught.value.setting == "providers.zoho.accounts_server"
    assert server not in str(caught.value)


CALLBACK_PARAM = """
[providers.acme.connection_params.dc]
label = "Data centre"
source = "callback"
path = "dc"
pattern = "^https://(?:us|eu)\\\\.acme\\\\.example$"
"""


@pytest.mark.parametrize(
    ("document", "setting"),
    [
        (  # a callback value is not known when the authorization request is made
            replace_line(
                "authorization_endpoint", 'authorization_endpoint = "https://{dc}/authorize"'
            )
            + CALLBACK_PARAM
            + 'default = "https://us.acme.example"\n',
            "providers.toml: providers.acme.authorization_endpoint",
        ),
        (  # a callback value in a URL needs a default, for before the callback
            replace_line("token_endpoint", 'token_endpoint = "https://{dc}/token"')
            + CALLBACK_PARAM,
            "providers.toml: providers.acme.connection_params.dc.default",
        ),
        (  # a default naming a link parameter must fill to a value the pattern accepts
            replace_line("token_endpoint", 'token_endpoint = "https://{dc}/token"')
            + CALLBACK_PARAM
            + 'default = "https://{dc}.evil.example"\n',
            "providers.toml: providers.acme.connection_params.dc.default",
        ),
    ],
)
def test_a_callback_value_fills_only_urls_used_after_the_callback(document, setting):
    with pytest.raises(ConfigError) as caught:
        parse_catalog(document)
    assert caught.value.setting == setting


def test_a_callback_value_with_a_default_fills_the_token_url():
    document = (
        replace_line("token_endpoint", 'token_endpoint = "https://{dc}/token"')
        + CALLBACK_PARAM
        + 'default = "https://us.acme.example"\n'
    )
    spec = parse_catalog(document)["acme"]
    assert spec.with_placeholders().token_endpoint == "https://us.acme.example/token"
    given = spec.with_placeholders(dc="https://eu.acme.example")
    assert given.token_endpoint == "https://eu.acme.example/token"


def test_amazon_region_picks_the_documented_hosts():
    spec = load_catalog()["amazon"]
    assert spec.placeholders == ("region",)
    eu = spec.with_placeholders(region="EU")
    assert eu.authorization_endpoint == "https://eu.account.amazon.com/ap/oa"
    assert eu.token_endpoint == "https://api.amazon.co.uk/auth/o2/token"
    fe = spec.with_placeholders(region="FE")
    assert fe.authorization_endpoint == "https://apac.account.amazon.com/ap/oa"
    assert fe.token_endpoint == "https://api.amazon.co.jp/auth/o2/token"
    na = spec.with_placeholders(region="NA")
    assert na.authorization_endpoint == "https://www.amazon.com/ap/oa"
    assert na.token_endpoint == "https://api.amazon.com/auth/o2/token"
    for region in ("eu", "JP", "api.amazon.co.uk"):
        with pytest.raises(ConfigError):
            spec.with_placeholders(region=region)


def test_intercom_region_picks_the_documented_hosts():
    spec = load_catalog()["intercom"]
    assert spec.placeholders == ("region",)
    for region, app, api in (
        ("US", "app.intercom.com", "api.intercom.io"),
        ("EU", "app.eu.intercom.com", "api.eu.intercom.io"),
        ("AU", "app.au.intercom.com", "api.au.intercom.io"),
    ):
        given = spec.with_placeholders(region=region)
        assert given.authorization_endpoint == f"https://{app}/oauth"
        assert given.token_endpoint == f"https://{api}/auth/eagle/token"
        assert given.userinfo_endpoint == f"https://{api}/me"
    for region in ("eu", "UK", "api.eu.intercom.io"):
        with pytest.raises(ConfigError):
            spec.with_placeholders(region=region)


HOSTS_ENTRY = replace_line("token_endpoint", 'token_endpoint = "https://{region.token}/token"') + (
    "\n[providers.acme.connection_params.region]\n"
    'label = "Region"\nsource = "link"\ndefault = "A"\npattern = "^(?:A|B)$"\n'
    "[providers.acme.connection_params.region.hosts.token]\n"
)


@pytest.mark.parametrize(
    ("hosts", "setting"),
    [
        ('A = "a.acme.example"\nC = "c.acme.example"\n', "region.hosts.token.C"),
        ('A = "a.acme.example"\nB = "evil.example/x"\n', "region.hosts.token.B"),
        ('B = "b.acme.example"\n', "region.default"),
    ],
)
def test_bad_region_hosts_are_refused(hosts, setting):
    with pytest.raises(ConfigError) as caught:
        parse_catalog(HOSTS_ENTRY + hosts)
    assert caught.value.setting == f"providers.toml: providers.acme.connection_params.{setting}"


def test_a_url_naming_undeclared_hosts_is_refused():
    hosts = 'A = "a.example"\nB = "b.example"\n'
    document = HOSTS_ENTRY.replace("{region.token}", "{region.api}") + hosts
    with pytest.raises(ConfigError) as caught:
        parse_catalog(document)
    assert caught.value.setting == "providers.toml: providers.acme.token_endpoint"
