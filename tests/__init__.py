"""The test suite, laid out like src/oauthvault; what the test modules share is in helpers/.

Test modules never import each other: shared code lives in ``tests.helpers`` and shared
fixtures in conftest.py.
"""

import pytest

# Asserts in the helpers (the OpenID client, the connect-flow walker) report like test asserts.
pytest.register_assert_rewrite("tests.helpers")
