"""The provider registry: every provider's knowledge in one record, and the proxy naming none of them itself."""

from __future__ import annotations

import ast
from pathlib import Path

import orjson
import pytest

from headroom.daemon.config import ProxyConfig
from headroom.daemon.providers import (
    CREDENTIAL_HEADERS,
    CWD_PATTERNS,
    DEFAULT_UPSTREAMS,
    PROVIDERS,
    SESSION_HEADERS,
    ProviderSpec,
    agent_of,
    body_session,
    match,
    provider_of,
    usage_of,
    websocket_endpoint,
)
from headroom.engine.messages import SHAPES
from headroom.learn.model import AGENTS

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", list(PROVIDERS))
def test_every_provider_is_a_complete_record(name: str) -> None:
    spec = PROVIDERS[name]
    assert isinstance(spec, ProviderSpec) and spec.name == name
    assert spec.default_upstream.startswith("https://")
    assert spec.agent in AGENTS
    assert spec.endpoints and all(e.shape in SHAPES for e in spec.endpoints)
    assert spec.credential_headers and spec.cwd_patterns
    for status in (400, 408, 413, 429, 502, 504):
        body = orjson.loads(spec.error_body(status, "the reason"))
        assert "the reason" in orjson.dumps(body).decode()


def test_the_configuration_has_an_upstream_per_provider() -> None:
    assert ProxyConfig().upstreams() == DEFAULT_UPSTREAMS
    assert set(ProxyConfig(openai_upstream="http://gw/openai").upstreams().values()) >= {"http://gw/openai"}


@pytest.mark.parametrize("name", list(PROVIDERS))
def test_every_endpoint_is_routed_to_its_provider(name: str) -> None:
    for endpoint in PROVIDERS[name].endpoints:
        if endpoint.method != "POST":
            continue
        path = endpoint.path if endpoint.path.startswith("/") else f"/v1beta/models/m-1:{endpoint.path}"
        route = match("POST", path, {})
        assert (route.provider, route.endpoint, route.key) == (name, endpoint.name, endpoint.key)
        assert route.compresses
        assert match("GET", path, {}).endpoint == "other"  # only POSTs carry a conversation


def test_pass_through_paths_follow_the_claims() -> None:
    assert provider_of("/v1/models", {}) == "openai"  # claimed by nobody
    assert provider_of("/v1/models", {"x-api-key": "k"}) == "anthropic"
    assert provider_of("/v1/models", {"x-api-key": "k", "x-goog-api-key": "g"}) == "gemini"  # Gemini's claim first
    assert provider_of("/v1beta/files", {}) == "gemini"
    assert match("POST", "/v1beta/models/m:embedContent", {}).endpoint == "other"


def test_agents_and_sessions_are_recognised_in_registry_order() -> None:
    assert agent_of({"user-agent": "curl/8"}) == "other"
    assert agent_of({"user-agent": "codex_tui/1", "originator": "x"}) == "codex"
    assert agent_of({"user-agent": "x", "originator": "codex_cli_rs"}) == "codex"
    assert SESSION_HEADERS[0] == "x-claude-code-session-id"
    claude = {"metadata": {"user_id": '{"session_id": "s-1"}'}, "prompt_cache_key": "c-1"}
    assert body_session(claude) == "s-1"  # Claude's metadata before Codex's cache key
    assert body_session({"prompt_cache_key": "c-1"}) == "c-1"
    assert body_session({"metadata": {"user_id": "not json session_id"}}) is None
    assert {"x-api-key", "authorization", "x-goog-api-key"} <= CREDENTIAL_HEADERS
    assert CWD_PATTERNS[-1].pattern.startswith("[Ww]orking directory")  # the older form is tried last


def test_usage_is_read_by_the_provider_that_recognises_it() -> None:
    into: dict[str, int] = {}
    usage_of({"usage": {"input_tokens": 5, "output_tokens": 2, "input_tokens_details": {"cached_tokens": 3}}}, into)
    assert into == {"input": 2, "cache_read": 3, "output": 2}  # Responses, not Anthropic's fields
    into = {}
    usage_of({"usage": {"input_tokens": 5, "cache_read_input_tokens": 7}}, into)
    assert into == {"input": 5, "cache_read": 7}
    into = {}
    usage_of({"type": "response.completed", "response": {"usage": {"input_tokens": 4, "output_tokens": 1}}}, into)
    assert into == {"input": 4, "cache_read": 0, "output": 1}
    usage_of(["not", "an", "object"], into)
    assert into == {"input": 4, "cache_read": 0, "output": 1}


def test_the_websocket_endpoint_is_openai_responses() -> None:
    provider, endpoint = websocket_endpoint()
    assert (provider.name, endpoint.name, endpoint.key, endpoint.shape) == (
        "openai",
        "responses_ws",
        "input",
        "responses",
    )


def test_no_proxy_module_names_a_provider_or_its_headers() -> None:
    """Provider knowledge lives in ``headroom.daemon.providers``: the proxy's modules ask the registry."""
    known = set(PROVIDERS) | {spec.agent for spec in PROVIDERS.values()} | set(CREDENTIAL_HEADERS)
    known |= {"anthropic-version", "usageMetadata", "prompt_cache_key", "response.completed"}
    found = [
        f"{path.name}:{node.lineno}: {node.value}"
        for path in sorted((ROOT / "daemon" / "proxy").glob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in known
    ]
    assert found == []
