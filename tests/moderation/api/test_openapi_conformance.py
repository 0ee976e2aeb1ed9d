"""Schemathesis against the app's own ``/openapi.json``, once per role and once without a
token: every operation, generated valid and invalid inputs, all of schemathesis' checks.

The bar (docs/security.md, "API input"): no 5xx, no response that breaks its declared schema,
no status code the operation does not document, and 405 for a method a path does not have.
Each case runs against an app on a fresh PostgreSQL database (``api_factory``) with the fake
scorer backend, 25 examples an operation and role.

The schema is read from an app built at import (it needs no database to describe itself);
each call goes to the test's own app (``app=``). Schemathesis' lazy ``from_fixture`` loader
is not used: it writes ``Node._nodeid``, which pytest 9 no longer has.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from moderation.api.app import create_app
from moderation.config import Settings
from tests.moderation.conftest import TOKENS

schema = schemathesis.openapi.from_asgi(
    "/openapi.json",
    create_app(Settings(_env_file=None, database_url="sqlite://")),  # type: ignore[call-arg]
)
# Schema-valid data the API still refuses by meaning gets these, not an acceptance failure:
# a callback URL that resolves to a private address, a review of a category the item does
# not ask for or one missing from the catalog (422), an image over the size limit (413).
schema.config.checks.positive_data_acceptance.expected_statuses = [
    "2xx", "401", "403", "404", "409", "413", "422", "429",
]  # fmt: skip

WHO = {"anonymous": None, "submitter": "alice", "reviewer": "rita", "admin": "adam"}


@pytest.fixture
def fuzzed_app(api_factory):
    return api_factory(backend="fake").client.app


@pytest.mark.parametrize("who", list(WHO))
@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_operation_for_every_role(case, who, fuzzed_app):
    # the generated bearer header becomes the role's token; a case that leaves it out (a
    # negative one) goes without, and the anonymous caller keeps the generated (unknown) one
    if who != "anonymous" and "Authorization" in (case.headers or {}):
        case.headers["Authorization"] = f"Bearer {TOKENS[WHO[who]]}"
    case.call_and_validate(app=fuzzed_app)
