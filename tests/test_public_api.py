import oauthvault
from oauthvault import errors


def test_all_is_exact_and_sorted():
    public = {name for name in dir(oauthvault) if not name.startswith("_")}
    # Submodules are attributes too once imported; only the names in __all__ are API.
    modules = {name for name in public if type(getattr(oauthvault, name)).__name__ == "module"}
    assert sorted(oauthvault.__all__) == oauthvault.__all__
    assert set(oauthvault.__all__) == public - modules


def test_exported_errors_claim_the_package_module():
    for name in errors.__all__:
        assert getattr(oauthvault, name).__module__ == "oauthvault"


def test_every_error_derives_from_vault_error():
    for name in errors.__all__:
        assert issubclass(getattr(oauthvault, name), oauthvault.VaultError)
    assert issubclass(oauthvault.ReauthorizationRequired, oauthvault.ProviderError)
    assert issubclass(oauthvault.InvalidState, oauthvault.FlowError)
