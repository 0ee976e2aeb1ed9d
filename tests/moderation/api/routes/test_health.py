"""Probes and the OpenAPI document."""

from __future__ import annotations


def test_health_and_readiness(api):
    assert api.client.get("/healthz").json() == {"status": "ok"}
    r = api.client.get("/readyz")
    assert r.status_code == 200 and r.json() == {"ready": True, "database": "ok", "broker": "ok"}


def test_readiness_fails_when_the_broker_is_unreachable(api_factory):
    api = api_factory(broker_url="redis://127.0.0.1:1/0")
    r = api.client.get("/readyz")
    assert r.status_code == 503 and r.json()["broker"].startswith("unreachable")


def test_openapi_documents_both_submission_forms(api):
    assert api.client.get("/docs").status_code == 200
    spec = api.client.get("/openapi.json").json()
    content = spec["paths"]["/v1/jobs"]["post"]["requestBody"]["content"]
    assert set(content) == {"multipart/form-data", "application/json"}
