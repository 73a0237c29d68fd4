"""Provider configuration: TOML tables, environment credentials, custom providers, secrecy."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from oauthvault import ConfigError, Settings
from oauthvault.providers import ProviderConfig, ProviderSpec, load_provider_configs

SECRET = "GOCSPX-file-secret-value"
ENV_SECRET = "env-secret-value-42"
PEM = (
    ec.generate_private_key(ec.SECP256R1())
    .private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    .decode()
)
PEM_BODY = PEM.splitlines()[1]


@pytest.fixture
def write(tmp_path: Path):
    def write(text: str) -> Path:
        path = tmp_path / "oauthvault.toml"
        path.write_text(text)
        return path

    return write


def load(path, **environ):
    return load_provider_configs(path, environ)


def config_error(path, **environ) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load(path, **environ)
    return caught.value


def test_catalog_provider_takes_its_spec_from_the_catalog(write):
    path = write(f'[providers.google]\nclient_id = "123.apps"\nclient_secret = "{SECRET}"\n')
    google = load(path)["google"]
    assert google.client_id == "123.apps"
    assert google.client_secret.get_secret_value() == SECRET
    assert google.spec.token_endpoint == "https://oauth2.googleapis.com/token"
    assert google.requested_scopes == ("openid", "email", "profile")
    assert google.authorize_params == {"access_type": "offline", "prompt": "consent"}
    assert google.scopes is None and google.redirect_uri is None


def test_user_keys_override_scopes_and_params_and_fill_placeholders(write):
    path = write(
        """
        [providers.microsoft-tenant]
        client_id = "app-id"
        client_secret = "s3cret"
        tenant = "contoso.onmicrosoft.com"
        scopes = ["offline_access", "Mail.Read"]
        redirect_uri = "https://app.example/callback"
        extra_authorize_params = { prompt = "select_account", domain_hint = "contoso.com" }
        """
    )
    config = load(path)["microsoft-tenant"]
    assert config.requested_scopes == ("offline_access", "Mail.Read")
    assert config.spec.token_endpoint == (
        "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
    )
    assert config.placeholders == {"tenant": "contoso.onmicrosoft.com"}
    assert config.authorize_params == {"prompt": "select_account", "domain_hint": "contoso.com"}
    assert config.redirect_uri == "https://app.example/callback"


def test_github_revocation_url_gets_the_client_id(write):
    path = write('[providers.github]\nclient_id = "Iv1.abc"\nclient_secret = "x"\n')
    github = load(path)["github"]
    assert github.spec.revocation_endpoint == "https://api.github.com/applications/Iv1.abc/grant"


def test_environment_fills_and_overrides_credentials(write):
    path = write(
        '[providers.google]\nclient_id = "from-file"\n'
        '[providers.microsoft-tenant]\ntenant = "common"\nclient_secret = "file-secret"\n'
    )
    configs = load(
        path,
        OAUTHVAULT_PROVIDER_GOOGLE_CLIENT_SECRET=ENV_SECRET,
        OAUTHVAULT_PROVIDER_MICROSOFT_TENANT_CLIENT_ID="env-id",
        OAUTHVAULT_PROVIDER_MICROSOFT_TENANT_CLIENT_SECRET=ENV_SECRET,
    )
    assert configs["google"].client_id == "from-file"
    assert configs["google"].client_secret.get_secret_value() == ENV_SECRET
    assert configs["microsoft-tenant"].client_id == "env-id"
    assert configs["microsoft-tenant"].client_secret.get_secret_value() == ENV_SECRET


def test_empty_environment_values_are_ignored(write):
    path = write(f'[providers.google]\nclient_id = "id"\nclient_secret = "{SECRET}"\n')
    config = load(path, OAUTHVAULT_PROVIDER_GOOGLE_CLIENT_SECRET="")["google"]
    assert config.client_secret.get_secret_value() == SECRET


def test_config_path_comes_from_oauthvault_config(write, monkeypatch):
    path = write(f'[providers.slack]\nclient_id = "id"\nclient_secret = "{SECRET}"\n')
    monkeypatch.setenv("OAUTHVAULT_CONFIG", str(path))
    assert set(Settings.load().provider_configs()) == {"slack"}
    assert load(None) == {}  # the reader itself never looks at the environment
    assert load(None) == {}


def test_custom_provider_with_explicit_endpoints_gets_safe_defaults(write):
    path = write(
        """
        [providers.acme]
        authorization_endpoint = "https://id.acme.example/authorize"
        token_endpoint = "https://id.acme.example/token"
        client_id = "acme-app"
        client_secret = "acme-secret"
        scopes = ["read", "write"]
        """
    )
    acme = load(path)["acme"]
    assert acme.spec == ProviderSpec(
        name="acme",
        display_name="acme",
        authorization_endpoint="https://id.acme.example/authorize",
        token_endpoint="https://id.acme.example/token",
    )
    assert acme.spec.scope_separator == " "
    assert acme.spec.token_endpoint_auth_method == "client_secret_basic"
    assert acme.spec.pkce is True
    assert acme.spec.refresh_tokens == "rotating"  # unknown: treated as rotating
    assert acme.requested_scopes == ("read", "write")


def test_custom_provider_may_set_spec_keys_and_use_loopback_http(write):
    path = write(
        """
        [providers.local]
        authorization_endpoint = "http://127.0.0.1:9000/auth"
        token_endpoint = "http://localhost:9000/token"
        revocation_endpoint = "http://127.0.0.1:9000/revoke"
        token_endpoint_auth_method = "client_secret_post"
        pkce = false
        refresh_tokens = "rotating"
        scope_separator = ","
        client_id = "id"
        client_secret = "secret"
        redirect_uri = "http://127.0.0.1:8765/callback"
        """
    )
    spec = load(path)["local"].spec
    assert spec.revocation_method == "rfc7009"
    assert (spec.token_endpoint_auth_method, spec.pkce, spec.refresh_tokens) == (
        "client_secret_post",
        False,
        "rotating",
    )


def test_issuer_only_provider_awaits_discovery(write):
    path = write(
        """
        [providers.corp]
        issuer = "https://login.example.com"
        client_id = "corp-app"
        client_secret = "corp-secret"
        scopes = ["openid", "offline_access"]
        """
    )
    corp = load(path)["corp"]
    assert corp.spec is None
    assert corp.issuer == "https://login.example.com"
    assert corp.scopes == ("openid", "offline_access")
    with pytest.raises(ConfigError):
        corp.authorize_params  # noqa: B018 -- the property is what raises
    spec = ProviderSpec(
        name="corp",
        display_name="corp",
        authorization_endpoint="https://login.example.com/authorize",
        token_endpoint="https://login.example.com/token",
        issuer="https://login.example.com",
    )
    resolved = corp.resolved(spec)
    assert resolved.spec == spec
    assert resolved.requested_scopes == ("openid", "offline_access")
    with pytest.raises(ConfigError) as caught:
        corp.resolved(ProviderSpec("x", "x", "https://a.example/a", "https://a.example/t"))
    assert caught.value.setting == "providers.corp.issuer"


def test_what_metadata_cannot_say_is_set_in_the_table(write):
    """A server's refresh-token behaviour and whether its grants are independent are not
    published: an issuer-only table (or a catalog one) may say them; unset, a discovered
    server is rotating, and its replaced grants are kept."""
    path = write(
        """
        [providers.dot]
        issuer = "https://dot.example.com/o"
        refresh_tokens = "static"
        independent_grants = true
        client_id = "dot-app"
        client_secret = "dot-secret"

        [providers.plain]
        issuer = "https://plain.example.com"
        client_id = "plain-app"
        client_secret = "plain-secret"

        [providers.bad]
        issuer = "https://bad.example.com"
        refresh_tokens = "sometimes"
        client_id = "bad-app"
        client_secret = "bad-secret"
        """
    )
    discovered = ProviderSpec("x", "x", "https://a.example/a", "https://a.example/t")
    with pytest.raises(ConfigError) as caught:
        load(path)
    assert caught.value.setting.endswith("providers.bad.refresh_tokens")
    path.write_text(path.read_text().split("[providers.bad]")[0])
    configs = load(path)
    dot = (
        configs["dot"]
        .resolved(dataclasses.replace(discovered, issuer="https://dot.example.com/o"))
        .spec
    )
    assert dot.refresh_tokens == "static" and dot.independent_grants is True
    plain = (
        configs["plain"]
        .resolved(dataclasses.replace(discovered, issuer="https://plain.example.com"))
        .spec
    )
    assert plain.refresh_tokens == "rotating" and plain.independent_grants is False


def test_issuer_only_provider_takes_overrides_on_top_of_discovery(write):
    path = write(
        """
        [providers.corp]
        issuer = "https://login.example.com"
        display_name = "Corp SSO"
        authorization_endpoint = "https://proxy.example.com/authorize"
        revocation_endpoint = "https://login.example.com/revoke?app={client_id}"
        revocation_method = "rfc7009"
        userinfo_endpoint = "https://login.example.com/me"
        introspection_endpoint = "http://127.0.0.1:9000/introspect"
        refresh_endpoint = "https://login.example.com/refresh"
        client_id = "corp-app"
        client_secret = "corp-secret"
        """
    )
    corp = load(path)["corp"]
    assert corp.spec is None and corp.issuer == "https://login.example.com"
    discovered = ProviderSpec(
        name="corp",
        display_name="corp",
        authorization_endpoint="https://login.example.com/authorize",
        token_endpoint="https://login.example.com/token",
        issuer="https://login.example.com",
    )
    spec = corp.resolved(discovered).spec
    assert spec.display_name == "Corp SSO"
    assert spec.authorization_endpoint == "https://proxy.example.com/authorize"
    assert spec.token_endpoint == "https://login.example.com/token"  # from discovery
    assert spec.revocation_endpoint == "https://login.example.com/revoke?app=corp-app"
    assert spec.revocation_method == "rfc7009"
    assert spec.userinfo_endpoint == "https://login.example.com/me"
    assert spec.introspection_endpoint == "http://127.0.0.1:9000/introspect"
    assert spec.refresh_endpoint == "https://login.example.com/refresh"
    assert spec.issuer == "https://login.example.com"


def test_a_revocation_endpoint_alone_means_rfc7009(write):
    path = write(
        """
        [providers.corp]
        issuer = "https://login.example.com"
        revocation_endpoint = "https://login.example.com/revoke"
        client_id = "corp-app"
        client_secret = "corp-secret"
        """
    )
    discovered = ProviderSpec("corp", "corp", "https://a.example/a", "https://a.example/t")
    spec = load(path)["corp"].overrides.apply(discovered)
    assert (spec.revocation_endpoint, spec.revocation_method) == (
        "https://login.example.com/revoke",
        "rfc7009",
    )


def test_catalog_tables_take_the_same_overrides(write):
    path = write(
        """
        [providers.microsoft]
        client_id = "app"
        client_secret = "s"
        display_name = "Microsoft (work)"
        revocation_endpoint = "https://proxy.example.com/revoke"

        [providers.github]
        client_id = "Iv1.abc"
        client_secret = "x"
        revocation_endpoint = "https://gh-proxy.example.com/applications/{client_id}/grant"

        [providers.google-mail]
        provider = "google"
        client_id = "id"
        client_secret = "x"
        revocation_endpoint = "https://proxy.example.com/google/revoke"
        revocation_method = "rfc7009"
        """
    )
    configs = load(path)
    microsoft = configs["microsoft"].spec
    assert microsoft.display_name == "Microsoft (work)"
    assert microsoft.revocation_endpoint == "https://proxy.example.com/revoke"
    assert microsoft.revocation_method == "rfc7009"
    github = configs["github"].spec
    assert github.revocation_endpoint == "https://gh-proxy.example.com/applications/Iv1.abc/grant"
    assert github.revocation_method == "custom" and github.revocation_request is not None
    google = configs["google-mail"].spec
    assert google.revocation_endpoint == "https://proxy.example.com/google/revoke"
    assert google.issuer == "https://accounts.google.com"


@pytest.mark.parametrize(
    ("lines", "key"),
    [
        (
            'revocation_method = "custom"\nrevocation_endpoint = "https://a.example/r"',
            "revocation_method",
        ),
        ('revocation_method = "rfc7009"', "revocation_method"),
        ('revocation_endpoint = "http://login.example.com/revoke"', "revocation_endpoint"),
        ('revocation_endpoint = "https://a.example/{tenant}/revoke"', "revocation_endpoint"),
        ("introspection_endpoint = 5", "introspection_endpoint"),
        ('display_name = " padded "', "display_name"),
        ("display_name = true", "display_name"),
        ('refresh_tokens = "sometimes"', "refresh_tokens"),
        ("pkce = false", "pkce"),
        ('token_endpont = "https://a.example/t"', "token_endpont"),
    ],
)
def test_bad_overrides_of_a_discovered_provider_name_the_setting(write, lines, key):
    path = write(
        '[providers.corp]\nissuer = "https://login.example.com"\n'
        f'client_id = "i"\nclient_secret = "x"\n{lines}\n'
    )
    error = config_error(path)
    assert error.setting == f"{path}: providers.corp.{key}"


def test_unknown_provider_without_issuer_is_an_error(write):
    path = write('[providers.gogle]\nclient_id = "id"\nclient_secret = "x"\n')
    error = config_error(path)
    assert error.setting == f"{path}: providers.gogle"
    assert "issuer" in error.problem


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ('[providers.google]\nclient_id = "id"\nclient_secert = "x"\n', "client_secert"),
        ('[providers.google]\nclient_secret = "x"\n', "client_id"),
        ('[providers.google]\nclient_id = "id"\n', "client_secret"),
        ('[providers.google]\nclient_id = "id"\nclient_secret = "x"\ntenant = "t"\n', "tenant"),
        (
            '[providers.zendesk]\nclient_id = "i"\nclient_secret = "x"\nsubdomain = "a/b"\n',
            "subdomain",
        ),
        ('[providers.google]\nclient_id = "a b"\nclient_secret = "x"\n', "client_id"),
        ('[providers.google]\nclient_id = "id"\nclient_secret = 5\n', "client_secret"),
        ('[providers.google]\nclient_id = "id"\nclient_secret = ""\n', "client_secret"),
        ('[providers.google]\nclient_id = "i"\nclient_secret = "x"\nscopes = "openid"\n', "scopes"),
        (
            '[providers.slack]\nclient_id = "i"\nclient_secret = "x"\nscopes = ["a,b"]\n',
            "scopes",
        ),
        (
            '[providers.google]\nclient_id = "i"\nclient_secret = "x"\n'
            'redirect_uri = "http://app.example/cb"\n',
            "redirect_uri",
        ),
        (
            '[providers.google]\nclient_id = "i"\nclient_secret = "x"\n'
            'extra_authorize_params = { redirect_uri = "https://evil.example" }\n',
            "extra_authorize_params.redirect_uri",
        ),
        (
            '[providers.corp]\nissuer = "http://login.example.com"\n'
            'client_id = "i"\nclient_secret = "x"\n',
            "issuer",
        ),
        (
            '[providers.corp]\nissuer = "https://login.example.com"\npkce = false\n'
            'client_id = "i"\nclient_secret = "x"\n',
            "pkce",
        ),
        (
            '[providers.corp]\nauthorization_endpoint = "https://a.example/a"\n'
            'client_id = "i"\nclient_secret = "x"\n',
            "token_endpoint",
        ),
        (
            '[providers.corp]\nauthorization_endpoint = "https://a.example/a"\n'
            'token_endpoint = "https://a.example/t"\n'
            'token_endpoint_auth_method = "private_key_jwt"\n'
            'client_id = "i"\nclient_secret = "x"\n',
            "token_endpoint_auth_method",
        ),
    ],
)
def test_bad_tables_name_file_and_key(write, table, key):
    path = write(table)
    name = table.split("]")[0].removeprefix("[providers.")
    error = config_error(path)
    assert error.setting == f"{path}: providers.{name}.{key}"


def test_bad_environment_value_names_the_variable(write):
    path = write('[providers.google]\nclient_secret = "x"\n')
    error = config_error(path, OAUTHVAULT_PROVIDER_GOOGLE_CLIENT_ID="has space")
    assert error.setting == "OAUTHVAULT_PROVIDER_GOOGLE_CLIENT_ID"


def test_missing_file_and_bad_toml_name_the_file(tmp_path, write):
    missing = tmp_path / "absent.toml"
    assert config_error(missing).setting == str(missing)
    path = write(f'[providers.google]\nclient_secret = "{SECRET}" oops\n')
    error = config_error(path)
    assert error.setting == str(path)
    assert "line 2" in error.problem
    assert SECRET not in str(error)
    assert error.__cause__ is None and error.__suppress_context__


def test_providers_must_be_tables(write):
    assert config_error(write("providers = 1\n")).setting.endswith(": providers")
    assert config_error(write("[providers]\ngoogle = 1\n")).setting.endswith("providers.google")
    path = write('[providers.Google]\nclient_id = "i"\nclient_secret = "x"\n')
    assert config_error(path).setting == f"{path}: providers.Google"


def test_other_top_level_tables_are_left_alone(write):
    path = write(
        '[service]\nport = 8000\n[providers.slack]\nclient_id = "i"\nclient_secret = "x"\n'
    )
    assert set(load(path)) == {"slack"}


def apple_table(**extra: str) -> str:
    lines = ["[providers.apple]", 'client_id = "com.example.web"']
    lines += [f'{key} = """{value}"""' for key, value in extra.items()]
    return "\n".join(lines) + "\n"


def test_apple_takes_team_key_and_private_key_instead_of_a_secret(write):
    path = write(apple_table(team_id="ABCDE12345", key_id="KEY1234567", private_key=PEM))
    apple = load(path)["apple"]
    assert apple.client_secret is None
    assert (apple.team_id, apple.key_id) == ("ABCDE12345", "KEY1234567")
    assert apple.private_key.get_secret_value() == PEM
    assert PEM_BODY not in repr(apple) + str(apple)


def test_apple_private_key_may_come_from_the_environment(write):
    path = write(apple_table(team_id="ABCDE12345", key_id="KEY1234567"))
    apple = load(path, OAUTHVAULT_PROVIDER_APPLE_PRIVATE_KEY=PEM)["apple"]
    assert apple.private_key.get_secret_value() == PEM


@pytest.mark.parametrize(
    ("fields", "environ", "setting"),
    [
        ({"team_id": "ABCDE12345", "key_id": "KEY1234567"}, {}, "private_key"),
        ({"key_id": "KEY1234567", "private_key": PEM}, {}, "team_id"),
        (
            {"team_id": "ABCDE12345", "key_id": "KEY1234567", "private_key": PEM[:-40]},
            {},
            "private_key",
        ),
        (
            {"team_id": "ABCDE12345", "key_id": "KEY1234567"},
            {"OAUTHVAULT_PROVIDER_APPLE_PRIVATE_KEY": PEM.replace("A", "B")},
            "OAUTHVAULT_PROVIDER_APPLE_PRIVATE_KEY",
        ),
        (
            {"team_id": "ABCDE12345", "key_id": "KEY1234567", "private_key": PEM},
            {"OAUTHVAULT_PROVIDER_APPLE_CLIENT_SECRET": ENV_SECRET},
            "OAUTHVAULT_PROVIDER_APPLE_CLIENT_SECRET",
        ),
    ],
)
def test_bad_apple_settings_are_named_and_never_shown(write, fields, environ, setting):
    path = write(apple_table(**fields))
    error = config_error(path, **environ)
    expected = (
        setting if setting.startswith("OAUTHVAULT_") else f"{path}: providers.apple.{setting}"
    )
    assert error.setting == expected
    shown = str(error) + repr(error) + repr(error.__cause__) + repr(error.__context__)
    assert PEM_BODY not in shown and PEM_BODY.replace("A", "B") not in shown
    assert ENV_SECRET not in shown


def test_private_key_belongs_to_apple_only(write):
    path = write('[providers.google]\nclient_id = "i"\nclient_secret = "x"\n')
    error = config_error(path, OAUTHVAULT_PROVIDER_GOOGLE_PRIVATE_KEY=PEM)
    assert error.setting == "OAUTHVAULT_PROVIDER_GOOGLE_PRIVATE_KEY"
    assert PEM_BODY not in str(error)


def test_secrets_are_absent_from_repr_str_and_errors(write):
    path = write(f'[providers.google]\nclient_id = "id"\nclient_secret = "{SECRET}"\n')
    config = load(path)["google"]
    for shown in (repr(config), str(config), f"{config}"):
        assert SECRET not in shown
    assert "client_id='id'" in repr(config)
    bad = write(f'[providers.google]\nclient_id = "id"\nclient_secret = "{SECRET}"\nscopes = 1\n')
    assert SECRET not in str(config_error(bad))
    direct = ProviderConfig(name="x", spec=None, client_id="id", client_secret=None)
    assert "client_secret" not in repr(direct)


def test_unmatched_credential_variables_are_logged_by_name_only(write, caplog):
    path = write(f'[providers.google]\nclient_id = "id"\nclient_secret = "{SECRET}"\n')
    with caplog.at_level(logging.WARNING, logger="oauthvault.providers"):
        load(
            path,
            OAUTHVAULT_PROVIDER_GOGLE_CLIENT_SECRET=ENV_SECRET,
            OAUTHVAULT_PROVIDER_GOOGLE_CLIENT_SECRET=ENV_SECRET,
            OAUTHVAULT_CONFIG_UNRELATED="1",
        )
    assert "OAUTHVAULT_PROVIDER_GOGLE_CLIENT_SECRET" in caplog.text
    assert "OAUTHVAULT_PROVIDER_GOOGLE_CLIENT_SECRET" not in caplog.text
    assert ENV_SECRET not in caplog.text and SECRET not in caplog.text
