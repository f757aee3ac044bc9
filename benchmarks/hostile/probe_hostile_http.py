"""The http group: malformed requests, oversized headers and bodies, bad JSON and wrong types, traversal."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import httpx

from benchmarks.hostile.hostile_types import HostileUnit, Keepsake, Probe
from benchmarks.hostile.send_hostile_request import send_hostile_request
from benchmarks.hostile.send_raw_bytes import send_raw_bytes

_JSON = {"Content-Type": "application/json"}
_BODY_LIMIT = 1024 * 1024  # the app's MAX_CONTENT_LENGTH; the server refuses past it plus 64 KiB
_DEVICE = 11
_CHAT = "/v1/chat/completions"

_MALFORMED_HEADS = (
    ("garbage request line", b"GARBAGE\r\n\r\n"),
    ("request line without a path", b"GET\r\n\r\n"),
    ("binary request line", b"\x00\xff\xfe\x16\x03\x01\r\n\r\n"),
    ("TLS hello on the HTTP port", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64),
    ("header line without a colon", b"GET / HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n"),
    ("negative Content-Length", b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n"),
    ("Content-Length not a number", b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: ab\r\n\r\n"),
    (
        "two different Content-Lengths",
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 5\r\n\r\n{}",
    ),
    ("unknown Transfer-Encoding", b"POST /api/conversations HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n"),
    (
        "chunk size not hex",
        b"POST /api/conversations HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
    ),
    ("request line of 20 KiB", b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("one header of 20 KiB", b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 20_000 + b"\r\n\r\n"),
    ("3000 small headers (24 KiB)", b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-H: v\r\n" * 3000 + b"\r\n"),
    # Traversal on the web app's files and the peers' file route, sent as written (clients would clean them).
    ("assets ../", b"GET /assets/../../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("assets %2e%2e", b"GET /assets/%2e%2e/%2e%2e/etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("assets ..%2f", b"GET /assets/..%2f..%2fiplm.db HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("assets NUL", b"GET /assets/index%00.js HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("icons ../", b"GET /icons/../../node_id HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("mesh file ../", b"GET /mesh/models/x/files/../../../iplm.db HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("mesh file %2e%2e", b"GET /mesh/models/%2e%2e/files/%2e%2e%2fnode_id HTTP/1.1\r\nHost: x\r\n\r\n"),
)
_TYPE_ERRORS: dict[str, tuple] = {
    "model": (1, [], {}, "no-such-model", ""),
    "messages": (None, "hi", {}, [], [1], [{"role": "user"}], [{"role": "wizard", "content": "x"}]),
    "max_tokens": ("16", -1, 0, 1.5, True, [], 10**400),
    "max_completion_tokens": ("16", 0, {}, 10**30),
    "temperature": ("hot", -1, 3, [], True, 10**400),
    "top_p": (0, 2, "x", {}),
    "stream": ("yes", 1, []),
    "stream_options": ("x", [1]),
    "stop": (5, [1], ["a"] * 10, {"a": 1}),
    "seed": ("1", 2**64, 1.5),
    "n": (2, "1", 0),
    "response_format": ("json", {"type": "xml"}, {"type": "json_schema"}, {"type": "json_schema", "json_schema": 1}),
    "reasoning_effort": ("extreme", 5, ["high"], {}, "HIGH"),
    "iplm_thinking": ("fast", [], {"max_calls": 0}, {"max_calls": 10**30}, {"max_seconds": "soon"}, {"depth": 3}),
}
_CONTENTS = (5, None, [{"type": "image_url", "image_url": "x"}], {"text": "x"}, "")
_NON_NUMBERS = ("NaN", "Infinity", "-Infinity", "1e999")
_SPAN = 0.5  # seconds between the slow client's bytes


def _chat_body(**fields) -> dict:
    return {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2, **fields}


def _raw_heads(url: str) -> list[Probe]:
    probes = [send_raw_bytes(url, label, head) for label, head in _MALFORMED_HEADS]
    over = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    probes.append(
        send_raw_bytes(url, "Content-Length of 1 GiB", over + b"Content-Length: 1073741824\r\n\r\n", expect=(413,))
    )
    probes.append(
        send_raw_bytes(
            url,
            "endless chunked body",
            over + b"Transfer-Encoding: chunked\r\n\r\n",
            body_chunks=200,
            chunk=b"8000\r\n" + b"x" * 0x8000 + b"\r\n",
            expect=(413, None),
        )
    )
    return probes


def _slow_loris(url: str) -> Probe:
    # Headers trickled forever: the unit must hang up at its request deadline (a drop is the wanted answer).
    return send_raw_bytes(
        url,
        "slow loris (headers trickled past the deadline)",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n",
        body_chunks=int(40 / _SPAN),
        chunk=b"X-Slow: 1\r\n",
        trickle_s=_SPAN,
        expect=(None,),
    )


def _json_probes(http: httpx.Client) -> list[Probe]:
    probes = []
    bodies = {
        "invalid JSON": b"{",
        "not UTF-8": b"\xff\xfe{}",
        "JSON null": b"null",
        "JSON array": b"[]",
        "array nesting bomb": b"[" * 100_000 + b"]" * 100_000,
        "object nesting bomb": b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
        "lone surrogate": b'{"messages": [{"role": "user", "content": "\\ud800"}]}',
        "empty body": b"",
    }
    for path in (_CHAT, "/api/conversations", "/api/conversations/1/messages"):
        for label, body in bodies.items():
            if path == "/api/conversations" and label == "empty body":
                continue  # an empty body creates a conversation there, by design
            probes.append(send_hostile_request(http, f"{label} to {path}", "POST", path, content=body, headers=_JSON))
    for name in ("max_tokens", "temperature", "top_p", "seed"):
        for word in _NON_NUMBERS:
            raw = json.dumps(_chat_body())[:-1] + f', "{name}": {word}}}'
            probes.append(
                send_hostile_request(http, f"{name} {word}", "POST", _CHAT, content=raw.encode(), headers=_JSON)
            )
    probes.append(
        send_hostile_request(
            http, "form-encoded chat", "POST", _CHAT, data={"messages": "hi"}, headers={"Accept": "*/*"}
        )
    )
    probes.append(
        send_hostile_request(http, "body just over the app's limit", "POST", _CHAT, content=b" " * (_BODY_LIMIT + 1))
    )
    return probes


def _field_probes(http: httpx.Client) -> list[Probe]:
    probes = [
        send_hostile_request(http, f"{name}={value!r:.40}", "POST", _CHAT, json=_chat_body(**{name: value}))
        for name, values in _TYPE_ERRORS.items()
        for value in values
    ]
    probes += [
        send_hostile_request(
            http,
            f"message content {content!r:.40}",
            "POST",
            _CHAT,
            json=_chat_body(messages=[{"role": "user", "content": content}]),
        )
        for content in _CONTENTS
    ]
    return probes


def _conversation_probes(http: httpx.Client) -> list[Probe]:
    probes = []
    titles: tuple[object, ...] = (1, [], {"t": 1}, "x" * 100_000)
    for title in titles:
        probes.append(
            send_hostile_request(
                http, f"new conversation titled {title!r:.30}", "POST", "/api/conversations", json={"title": title}
            )
        )
    probes.append(
        send_hostile_request(
            http, "new conversation with another model", "POST", "/api/conversations", json={"model": "nope"}
        )
    )
    probes.append(
        send_hostile_request(http, "new conversation with a model 5", "POST", "/api/conversations", json={"model": 5})
    )
    # One conversation of this phone's own, to send wrong bodies at.
    own = http.post("/api/conversations", json={"title": "hostile"}).json().get("id", "1")
    for new_title in (None, 7, "y" * 100_000):
        probes.append(
            send_hostile_request(
                http, f"rename to {new_title!r:.30}", "PATCH", f"/api/conversations/{own}", json={"title": new_title}
            )
        )
    for body in (
        {"content": 5},
        {"content": ""},
        {"content": "x" * 200_000},
        {"content": "hi", "params": "x"},
        {"content": "hi", "params": {"max_tokens": "x"}},
        {"content": "hi", "params": {"temperature": 9}},
        {"content": "hi", "model": 3},
    ):
        probes.append(
            send_hostile_request(
                http, f"message {json.dumps(body)[:40]}", "POST", f"/api/conversations/{own}/messages", json=body
            )
        )
    for weird in ("..%2F..%2Fiplm.db", "1%27%3B%20DROP%20TABLE%20conversation", "x" * 8000, "%00", "-1", "1e9"):
        probes.append(send_hostile_request(http, f"conversation id {weird:.30}", "GET", f"/api/conversations/{weird}"))
    return probes


def _route_probes(http: httpx.Client) -> list[Probe]:
    probes = [
        send_hostile_request(http, f"{method} {path}", method, path)
        for method, path in (
            ("GET", "/nope"),
            ("GET", "/v2/chat/completions"),
            ("GET", "/api/admin/../../etc/passwd"),
            ("DELETE", "/v1/models"),
            ("PUT", "/healthz"),
            ("GET", _CHAT),
            ("PROPFIND", "/"),
            ("POST", "/assets/index.js"),
            ("GET", "/assets/no-such-file.js"),
            ("GET", "/mesh/models"),
        )
    ]
    return probes


def probe_hostile_http(unit: HostileUnit, keepsake: Keepsake) -> list[Probe]:
    """Every kind of malformed HTTP a phone can send; the slow loris trickles meanwhile, on its own thread."""
    with ThreadPoolExecutor(max_workers=1) as background:
        slow = background.submit(_slow_loris, unit.url)
        probes = _raw_heads(unit.url)
        with httpx.Client(
            base_url=unit.url, timeout=30, transport=httpx.HTTPTransport(local_address=f"127.0.0.{_DEVICE}")
        ) as http:
            probes += _json_probes(http) + _field_probes(http) + _conversation_probes(http) + _route_probes(http)
        probes.append(slow.result())
    return probes
