"""The HTTP endpoint: valid records get a Recommendation, invalid ones 4xx naming the field, concurrent
requests never share a model call, and the app serves through a real uvicorn on loopback."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient

import inference
from medlora.schemas import DISCLAIMER, MAX_RECORD_BYTES, Recommendation
from medlora.server import ENDPOINT, create_app

VALID = {
    "patient_id": "MRN-42",
    "age": 54,
    "sex": "male",
    "conditions": ["hypertension"],
    "symptoms": ["headache"],
}


@pytest.fixture(scope="module")
def recommender(tiny_model, tiny_adapter, tmp_path_factory):
    log = tmp_path_factory.mktemp("serverlog") / "inference_log.json"
    cfg = inference.InferenceConfig(
        serve=True,
        base_model=str(tiny_model),
        adapter=str(tiny_adapter),
        log_file=str(log),
        max_new_tokens=16,
    )
    return inference.Recommender(cfg)


@pytest.fixture(scope="module")
def client(recommender):
    with TestClient(create_app(recommender)) as c:
        yield c


def log_entries(recommender) -> list[dict]:
    return json.loads(Path(recommender.cfg.log_file).read_text())


def test_a_valid_record_gets_a_recommendation(client, recommender):
    r = client.post(ENDPOINT, json={**VALID, "vitals": {"spo2": 84}})
    assert r.status_code == 200, r.text
    rec = Recommendation.model_validate(r.json())
    assert rec.safety.disclaimer == DISCLAIMER and rec.immediate_actions[0].startswith("EMERGENCY")
    entry = log_entries(recommender)[-1]
    assert entry["request_id"] == r.headers["X-Request-ID"] and entry["source"] == "http"
    assert (
        entry["outcome"] == "ok" and entry["red_flags"] == ["low_spo2"] and "MRN-42" not in json.dumps(entry)
    )


def test_health_and_openapi_docs(client):
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["model"]["adapter"]
    spec = client.get("/openapi.json").json()
    assert ENDPOINT in spec["paths"] and "PatientRecord" in spec["components"]["schemas"]
    assert client.get("/docs").status_code == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ('{"age": 54, "symptoms": ["cough"]', None),  # malformed JSON
        ({"age": "old", "symptoms": ["cough"]}, "age"),
        ({"age": 121, "symptoms": ["cough"]}, "age"),
        ({"symptoms": ["cough"], "vitals": {"systolic_bp": 400}}, "vitals.systolic_bp"),
        ({"symptoms": ["cough"], "insurance": "gold"}, "insurance"),
        ({"age": 54}, "conditions/symptoms"),
        ({"symptoms": ["cough"], "notes": "x" * 2001}, "notes"),
        ({"symptoms": ["cough\u0000"]}, "symptoms"),
    ],
)
def test_invalid_records_are_422_naming_the_field_and_logged_without_data(client, recommender, body, field):
    kwargs = (
        {"content": body, "headers": {"content-type": "application/json"}}
        if isinstance(body, str)
        else {"json": body}
    )
    r = client.post(ENDPOINT, **kwargs)
    assert r.status_code == 422
    detail = r.json()["detail"]
    if field is not None:
        assert field in [d["field"] for d in detail], detail
    assert all("input" not in d for d in detail)
    entry = log_entries(recommender)[-1]
    assert entry["outcome"] == "invalid_input" and entry["request_id"] == r.headers["X-Request-ID"]
    assert "cough" not in json.dumps(entry)


def test_oversized_bodies_are_refused_before_parsing(client, recommender):
    big = json.dumps({**VALID, "conditions": ["hypertension"] * 2000}).encode()
    assert len(big) > MAX_RECORD_BYTES
    assert client.post(ENDPOINT, content=big, headers={"content-type": "application/json"}).status_code == 413

    def chunks():  # no Content-Length: the limit must count what arrives
        for i in range(0, len(big), 1024):
            yield big[i : i + 1024]

    r = client.post(ENDPOINT, content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert log_entries(recommender)[-1]["invalid_fields"] == ["body"]


def test_concurrent_requests_never_share_a_model_call(recommender, monkeypatch):
    active, overlaps, real = [0], [], recommender.generator.generate
    guard = threading.Lock()

    def spy(records, batch_size=8, **kw):
        with guard:
            active[0] += 1
            overlaps.append(active[0])
        try:
            return real(records, batch_size=batch_size, **kw)
        finally:
            with guard:
                active[0] -= 1

    monkeypatch.setattr(recommender.generator, "generate", spy)
    with TestClient(create_app(recommender)) as c:
        results = []
        threads = [
            threading.Thread(target=lambda: results.append(c.post(ENDPOINT, json=VALID).status_code))
            for _ in range(6)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert results == [200] * 6 and len(overlaps) == 6 and max(overlaps) == 1


def test_a_model_failure_is_a_500_with_the_request_id(recommender, monkeypatch):
    def broken(records, batch_size=8, **kw):
        raise RuntimeError("boom")

    monkeypatch.setattr(recommender.generator, "generate", broken)
    with TestClient(create_app(recommender), raise_server_exceptions=False) as c:
        r = c.post(ENDPOINT, json=VALID)
    assert r.status_code == 500 and r.json()["request_id"]
    assert log_entries(recommender)[-1]["outcome"] == "error"


def test_through_a_real_uvicorn_on_loopback(recommender):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(recommender), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
            time.sleep(0.05)
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/health").json()["status"] == "ok"
        r = httpx.post(f"{base}{ENDPOINT}", json=VALID, timeout=60)
        assert r.status_code == 200
        Recommendation.model_validate(r.json())
        assert httpx.post(f"{base}{ENDPOINT}", json={"age": 54}).status_code == 422
    finally:
        server.should_exit = True
        thread.join(timeout=30)
    assert not thread.is_alive()
