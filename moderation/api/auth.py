"""Bearer tokens → principals with a role: the API's view of the one identity resolver.

Everything lives in ``moderation.services.tokens`` (the dashboard's login uses the same
``TokenResolver``); these names are kept for the API's modules and tests.
"""

from __future__ import annotations

from moderation.services.tokens import ROLE_RANK, Principal, TokenResolver, TooManyFailures

__all__ = ["ROLE_RANK", "Principal", "TokenAuthenticator", "TooManyFailures"]

TokenAuthenticator = TokenResolver
