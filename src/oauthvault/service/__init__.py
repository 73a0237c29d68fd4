"""The HTTP face of oauthvault: a FastAPI app (``create_app``) and a mountable OAuth router."""

from oauthvault.service.app import create_app
from oauthvault.service.oauth_routes import Identity, create_oauth_router

__all__ = ["Identity", "create_app", "create_oauth_router"]
