"""The HTTP endpoint: valid records get a Recommendation, invalid ones 4xx naming the field, concurrent
requests never share a model call, a full queue or a passed deadline is 503 with Retry-After and every
request is logged exactly once, the API key is enforced off loopback, SIGTERM drains and exits 0, and a
schemathesis run from the OpenAPI schema finds no 500 and no undocumented response."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
import schemathesis
import uvicorn
from conftest import ROOT
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

import inference
from medlora.common.cli import UsageError
from medlora.common.schemas import DISCLAIMER, MAX_RECORD_BYTES, ModelInfo, Recommendation, Sections
from medlora.safety.rules import apply_safety
from medlora.serving import recommender as serving_recommender
from medlora.serving.server import ENDPOINT, create_app, resolve_api_key

VALID = {
    "patient_id": "MRN-42",
    "age": 54,
    "sex": "male",
    "conditions": ["hypertension"],
    "symptoms": ["headache"],
}


# The tiny model has no passage index: serve it without retrieval (issue 10's --k 0), where that flag exists.
NO_RETRIEVAL = {"k": 0} if "k" in {f.name for f in dataclasses.fields(inference.InferenceConfig)} else {}


@pytest.fixture(scope="module")
def recommender(tiny_model, tiny_adapter, tmp_path_factory):
    log = tmp_path_factory.mktemp("serverlog") / "inference_log.json"
    cfg = inference.InferenceConfig(
        serve=True,
        base_model=str(tiny_model),
        adapter=str(tiny_adapter),
        log_file=str(log),
        max_new_tokens=16,
        **NO_RETRIEVAL,
    )
    return serving_recommender.Recommender(cfg)


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


def test_a_record_too_long_for_the_context_is_422_naming_the_limit(recommender, monkeypatch):
    monkeypatch.setattr(recommender, "context", recommender.cfg.max_new_tokens + 40)
    with TestClient(create_app(recommender), raise_server_exceptions=False) as c:
        r = c.post(ENDPOINT, json={**VALID, "notes": "long history " * 150})
    assert r.status_code == 422 and "does not fit the model's context" in r.json()["detail"][0]["msg"]
    assert log_entries(recommender)[-1]["outcome"] == "invalid_input"


def test_the_recommender_logs_a_result_nobody_waits_for_as_timeout(recommender):
    record = inference.PatientRecord(**VALID)
    with pytest.raises(TimeoutError):
        recommender.recommend([record], source="http", request_ids=["late-1"], cancelled=lambda: True)
    entry = log_entries(recommender)[-1]
    assert entry["request_id"] == "late-1" and entry["outcome"] == "timeout" and entry["latency_s"] > 0
    (rec,) = recommender.recommend([record], source="http", request_ids=["on-time"], cancelled=lambda: False)
    assert log_entries(recommender)[-1]["outcome"] == "ok" and rec.safety.disclaimer == DISCLAIMER


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


# --- queue, deadline, access: a fake recommender with the real one's interface, no model -----------------------


class FakeRecommender:
    """``recommend`` waits for ``release`` (or ``delay`` seconds); every entry goes to ``entries``."""

    def __init__(self, delay: float = 0.0, blocking: bool = False):
        self.cfg = SimpleNamespace(backend="fake")
        self.info = ModelInfo(base="fake", revision="0", adapter=None)
        self.delay, self.release = delay, threading.Event()
        if not blocking:
            self.release.set()
        self.entries: list[dict] = []
        self.calls = 0
        self.on_loop: list[bool] = []
        self.lock = threading.Lock()

    def _log(self, **entry) -> None:
        try:
            asyncio.get_running_loop()
            on_loop = True
        except RuntimeError:
            on_loop = False
        with self.lock:
            self.entries.append(entry)
            self.on_loop.append(on_loop)

    def log_outcome(self, outcome, source, request_id=None, **fields):
        self._log(outcome=outcome, source=source, request_id=request_id, **fields)

    def recommend(self, records, source="cli", request_ids=None, cancelled=None):
        with self.lock:
            self.calls += 1
        time.sleep(self.delay)
        self.release.wait(30)
        outcome = "timeout" if cancelled is not None and cancelled() else "ok"
        for rid in request_ids:
            self._log(outcome=outcome, source=source, request_id=rid)
        if outcome == "timeout":
            raise TimeoutError("gave up")
        out = []
        for record in records:
            checked = apply_safety(record, Sections())
            out.append(
                Recommendation(**checked.sections.model_dump(), safety=checked.safety, model=self.info)
            )
        return out

    def outcomes(self) -> dict[str, str]:
        with self.lock:
            ids = [e["request_id"] for e in self.entries]
            assert len(ids) == len(set(ids)), f"a request was logged twice: {self.entries}"
            return {e["request_id"]: e["outcome"] for e in self.entries}


def post_in_thread(client: TestClient, results: dict, rid: str, **kw) -> threading.Thread:
    def go():
        results[rid] = client.post(
            ENDPOINT, json=VALID, headers={"X-Request-ID": rid, **kw.get("headers", {})}
        )

    t = threading.Thread(target=go)
    t.start()
    return t


def wait_for(condition, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def test_a_full_queue_is_503_with_retry_after_and_every_request_is_logged_once():
    fake = FakeRecommender(blocking=True)
    with TestClient(create_app(fake, max_queue=2, request_timeout=30)) as c:
        results: dict = {}
        threads = [post_in_thread(c, results, f"req-{i}") for i in range(2)]
        wait_for(lambda: c.get("/health").json()["queue"]["depth"] == 2)
        health = c.get("/health").json()
        assert health["queue"] == {"depth": 2, "max": 2, "generating": True, "request_timeout_s": 30.0}
        assert health["backend"] == "fake" and health["model_loaded"] is True
        assert c.get("/ready").status_code == 503
        r = c.post(ENDPOINT, json=VALID, headers={"X-Request-ID": "req-full"})
        assert r.status_code == 503 and int(r.headers["Retry-After"]) >= 1
        assert r.json()["request_id"] == r.headers["X-Request-ID"] == "req-full"
        fake.release.set()
        for t in threads:
            t.join()
        assert [results[f"req-{i}"].status_code for i in range(2)] == [200, 200]
        assert c.get("/ready").json() == {"ready": True, "reason": None}
        assert c.get("/health").json()["queue"]["depth"] == 0
    assert fake.outcomes() == {"req-0": "ok", "req-1": "ok", "req-full": "overloaded"}
    assert not any(fake.on_loop), "a log write ran on the event loop"


def test_a_request_past_its_deadline_is_503_and_a_waiting_one_never_reaches_the_model():
    fake = FakeRecommender(blocking=True)
    with TestClient(create_app(fake, max_queue=4, request_timeout=0.5)) as c:
        results: dict = {}
        running = post_in_thread(c, results, "running")
        wait_for(lambda: fake.calls == 1)
        waiting = post_in_thread(c, results, "waiting")
        running.join()
        waiting.join()
        assert results["running"].status_code == results["waiting"].status_code == 503
        assert "Retry-After" in results["waiting"].headers
        # generate() cannot be interrupted: the running one holds the model, and its slot, until it returns.
        assert c.get("/health").json()["queue"] == {
            "depth": 1, "max": 4, "generating": True, "request_timeout_s": 0.5
        }  # fmt: skip
        fake.release.set()
        wait_for(lambda: c.get("/health").json()["queue"]["depth"] == 0)
        assert c.post(ENDPOINT, json=VALID).status_code == 200
    assert fake.calls == 2  # "waiting" was dropped from the queue: the model never saw it
    outcomes = fake.outcomes()
    assert outcomes["running"] == "timeout" and outcomes["waiting"] == "timeout"
    assert [e.get("stage") for e in fake.entries if e["request_id"] == "waiting"] == ["queued"]


def test_a_client_request_id_is_kept_only_when_it_is_safe():
    fake = FakeRecommender()
    with TestClient(create_app(fake)) as c:
        assert (
            c.post(ENDPOINT, json=VALID, headers={"X-Request-ID": "abc-123"}).headers["X-Request-ID"]
            == "abc-123"
        )
        r = c.post(ENDPOINT, json=VALID, headers={"X-Request-ID": "bad id\\n" + "x" * 80})
        assert len(r.headers["X-Request-ID"]) == 32 and r.headers["X-Request-ID"] in fake.outcomes()


def test_422_and_413_are_logged_off_the_event_loop():
    fake = FakeRecommender()
    with TestClient(create_app(fake)) as c:
        assert c.post(ENDPOINT, json={"age": 500}).status_code == 422
        big = b'{"symptoms": ["' + b"x" * MAX_RECORD_BYTES + b'"]}'
        r = c.post(ENDPOINT, content=big, headers={"content-type": "application/json"})
        assert r.status_code == 413 and r.json()["detail"][0]["field"] == "body"
    assert [e["outcome"] for e in fake.entries] == ["invalid_input", "invalid_input"]
    assert fake.on_loop == [False, False]


def test_422s_say_what_is_wrong_with_the_body_not_a_character_position():
    fake = FakeRecommender()
    with TestClient(create_app(fake)) as c:
        text = c.post(ENDPOINT, content=json.dumps(VALID), headers={"content-type": "text/plain"})
        bare = c.post(ENDPOINT, content=json.dumps(VALID))  # no Content-Type at all
        broken = c.post(ENDPOINT, content='{"age": 54,', headers={"content-type": "application/json"})
        swapped = c.post(ENDPOINT, json={**VALID, "vitals": {"systolic_bp": 70, "diastolic_bp": 130}})
        plus = c.post(ENDPOINT, content=json.dumps(VALID), headers={"content-type": "application/x+json"})
    assert [r.status_code for r in (text, bare, broken, swapped, plus)] == [422, 422, 422, 422, 200]
    (d,) = text.json()["detail"]
    assert d["field"] == "body" and d["type"] == "content_type"
    assert "Content-Type: application/json" in d["msg"] and "text/plain" in d["msg"]
    assert "(got none)" in bare.json()["detail"][0]["msg"]
    (d,) = broken.json()["detail"]
    assert d["loc"] == ["body"] and d["field"] == "body" and d["type"] == "json_invalid"
    assert "not valid JSON" in d["msg"] and "character 11" in d["msg"]
    (d,) = swapped.json()["detail"]
    assert d["field"] == "vitals.diastolic_bp" and "swapped" in d["msg"]
    assert [e["outcome"] for e in fake.entries] == ["invalid_input"] * 4 + ["ok"]


def test_swagger_ui_and_redoc_load_only_assets_the_server_serves(tmp_path):
    """/docs must render with no network: every script, style and icon the pages name is served here."""
    import re

    import medlora

    with TestClient(create_app(FakeRecommender(), api_key=KEY)) as c:  # the docs need no key
        assert c.get("/openapi.json").json()["info"]["version"] == medlora.__version__
        for page, must in (("/docs", "swagger-ui-bundle.js"), ("/redoc", "redoc.standalone.js")):
            html = c.get(page)
            assert html.status_code == 200 and must in html.text
            urls = re.findall(r"""(?:src|href|spec-url)=["']([^"']+)|url: *'([^']+)'""", html.text)
            urls = [a or b for a, b in urls]
            assert len(urls) >= 2 and not [u for u in urls if not u.startswith("/")], urls
            assert "http://" not in html.text and "https://" not in html.text
            for url in urls:
                r = c.get(url)
                assert r.status_code == 200, url
                assert len(r.content) > 1000 or url.endswith(".png"), url


def test_the_api_version_is_the_one_in_pyproject():
    import medlora

    m = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.MULTILINE)
    assert medlora.__version__ == m.group(1)
    assert create_app(FakeRecommender()).version == m.group(1)


KEY = "k" * 24 + "-secret"


def test_the_api_key_is_required_compared_whole_and_never_logged():
    fake = FakeRecommender()
    with TestClient(create_app(fake, api_key=KEY)) as c:
        assert c.post(ENDPOINT, json=VALID).status_code == 401
        for wrong in (KEY[:-1], KEY + "x", "", KEY.upper()):
            r = c.post(ENDPOINT, json=VALID, headers={"Authorization": f"Bearer {wrong}"})
            assert r.status_code == 401 and r.headers["WWW-Authenticate"] == "Bearer"
        assert c.post(ENDPOINT, json=VALID, headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
        assert c.post(ENDPOINT, content=b"{", headers={"Authorization": "Basic x"}).status_code == 401
        assert (
            c.get("/health").status_code == 200 and c.get("/ready").status_code == 200
        )  # probes carry no key
        spec = c.get("/openapi.json").json()
        assert "401" in spec["paths"][ENDPOINT]["post"]["responses"] and spec["components"]["securitySchemes"]
    assert [e["outcome"] for e in fake.entries] == ["ok"]  # strangers' requests cannot fill the log
    assert KEY not in json.dumps(fake.entries)


def test_no_cors_headers_by_default():
    with TestClient(create_app(FakeRecommender())) as c:
        pre = c.options(
            ENDPOINT, headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
        )
        r = c.post(ENDPOINT, json=VALID, headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in pre.headers and "access-control-allow-origin" not in r.headers


def test_binding_off_loopback_needs_a_key_unless_no_auth(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("MEDLORA_API_KEY", raising=False)
    assert resolve_api_key("127.0.0.1", None, False) is None and resolve_api_key("::1", None, False) is None
    with pytest.raises(UsageError, match="--no-auth"):
        resolve_api_key("0.0.0.0", None, False)
    assert resolve_api_key("0.0.0.0", None, True) is None
    key_file = tmp_path / "key"
    key_file.write_text(KEY + "\n")
    assert resolve_api_key("0.0.0.0", str(key_file), False) == KEY
    monkeypatch.setenv("MEDLORA_API_KEY", KEY)
    assert resolve_api_key("10.0.0.5", None, False) == KEY
    key_file.write_text("short")
    with pytest.raises(UsageError, match="at least 16"):
        resolve_api_key("127.0.0.1", str(key_file), False)
    monkeypatch.delenv("MEDLORA_API_KEY")
    # Through the stage: one line, exit 2, before any model is loaded (the base model does not exist).
    argv = ["--serve", "--host", "0.0.0.0", "--base-model", str(tmp_path / "none"), "--base-only"]
    assert inference.run_stage(inference.main, inference.InferenceConfig, argv=argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--api-key-file" in err[0]


SERVE_SCRIPT = """
import sys, time
sys.path.insert(0, {root!r})
from medlora.common.files import append_json_log
from medlora.common.schemas import ModelInfo, Recommendation
from medlora.serving.server import serve

class Slow:  # a model call of 1.5 s, logged to a real log file
    info = ModelInfo(base="fake")

    def log_outcome(self, outcome, source, request_id=None, **fields):
        append_json_log({log!r}, dict(outcome=outcome, request_id=request_id, **fields))

    def recommend(self, records, source, request_ids, cancelled=None):
        time.sleep(1.5)
        self.log_outcome("timeout" if cancelled() else "ok", source, request_ids[0])
        return [Recommendation() for _ in records]

serve(Slow(), "127.0.0.1", {port}, request_timeout=30)
print("serve returned", flush=True)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sigterm_finishes_the_request_in_flight_and_exits_0(tmp_path):
    port, log = free_port(), tmp_path / "inference_log.json"
    script = SERVE_SCRIPT.format(root=str(ROOT), log=str(log), port=port)
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script)], stdout=subprocess.PIPE, text=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: proc.poll() is None and _up(base), 60)
        result: dict = {}
        t = threading.Thread(
            target=lambda: result.update(
                r=httpx.post(base + ENDPOINT, json=VALID, timeout=30, headers={"X-Request-ID": "inflight"})
            )
        )
        t.start()
        wait_for(lambda: httpx.get(base + "/health").json()["queue"]["depth"] == 1)
        proc.send_signal(signal.SIGTERM)
        t.join(30)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert result["r"].status_code == 200
    assert "serve returned" in proc.stdout.read()
    assert [e["request_id"] for e in json.loads(log.read_text())] == ["inflight"]


def _up(base: str) -> bool:
    try:
        return httpx.get(base + "/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


# --- property-based: requests generated from the app's own OpenAPI schema -----------------------------------

FUZZ_KEY = "fuzz-" + "k" * 27
FUZZ_APP = create_app(FakeRecommender(), api_key=FUZZ_KEY, request_timeout=10)
fuzz_schema = schemathesis.openapi.from_asgi("/openapi.json", FUZZ_APP)
fuzz_schema.config.generation.update(modes=["positive", "negative"], max_examples=30)


@fuzz_schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_fuzz_no_500_and_every_response_is_documented(case):
    """Every check schemathesis has: no 5xx, status codes, content types, headers and bodies as documented,
    negative data rejected, the key enforced."""
    case.call_and_validate(
        headers={"Authorization": f"Bearer {FUZZ_KEY}"}, excluded_checks=[positive_data_acceptance]
    )


def test_a_blank_answer_is_unsupported_in_the_http_response_too():
    """The stand-in's sections are empty: the body says nothing could be supported, and why."""
    with TestClient(create_app(FakeRecommender())) as c:
        body = c.post(ENDPOINT, json=VALID).json()
        assert body["status"] == "unsupported" and body["unsupported_reason"] == "model_wrote_nothing"
        assert "could be supported" in body["status_message"]
        body = c.post(ENDPOINT, json={**VALID, "vitals": {"spo2": 84}}).json()
        assert body["status"] == "emergency" and body["immediate_actions"][0].startswith("EMERGENCY")
        schema = c.get("/openapi.json").json()["components"]["schemas"]["Recommendation"]
        assert set(schema["properties"]["status"]["enum"]) == {"recommendation", "emergency", "unsupported"}


def test_a_typo_d_field_is_422_with_did_you_mean():
    with TestClient(create_app(FakeRecommender())) as c:
        r = c.post(ENDPOINT, json={**VALID, "allergys": ["penicillin"]})
    assert r.status_code == 422
    (entry,) = r.json()["detail"]
    assert entry["field"] == "allergys" and entry["msg"].endswith("(did you mean 'allergies'?)")


def test_the_served_command_exits_promptly_after_uvicorn_finishes(tiny_model, tiny_adapter, tmp_path):
    """Issue 30: "Finished server process" came about 20 s before the process ended (the interpreter freeing
    torch and the model). After a clean shutdown the process now ends at once and says so."""
    port = free_port()
    cmd = [sys.executable, str(ROOT / "inference.py"), "--serve", "--port", str(port), "--k", "0",
           "--base-model", str(tiny_model), "--adapter", str(tiny_adapter), "--log-file", str(tmp_path / "l.json")]  # fmt: skip
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, cwd=str(ROOT))
    stamps: list[tuple[float, str]] = []
    reader = threading.Thread(target=lambda: stamps.extend((time.monotonic(), line) for line in proc.stderr))
    reader.start()
    try:
        wait_for(lambda: proc.poll() is None and _up(f"http://127.0.0.1:{port}"), 120)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    ended = time.monotonic()
    reader.join(10)
    finished = next(t for t, line in stamps if "Finished server process" in line)
    assert "server stopped; exit 0" in stamps[-1][1]
    assert ended - finished < 2.0, f"{ended - finished:.1f} s between uvicorn's last line and the exit"
