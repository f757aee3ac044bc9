"""The peers group: the piece service (/mesh/models/…) without, with forged, stale and replayed signatures,
and with hostile ranges and paths under a valid one."""

from __future__ import annotations

import secrets
import time

import httpx

from appliance.mesh.key.create_mesh_key import create_mesh_key
from appliance.mesh.key.derive_mesh_secrets import derive_mesh_secrets
from appliance.mesh.key.parse_mesh_key import parse_mesh_key
from appliance.mesh.messages.sign_peer_request import PEER_AUTH_HEADER, sign_peer_request
from benchmarks.hostile.hostile_types import HostileUnit, Keepsake, Probe
from benchmarks.hostile.send_hostile_request import send_hostile_request

_DEVICE = 14
_NODE = "00000000000000e1"  # the node id the hostile "peer" claims
_HELD = "tokenizer.json"  # a file the hostile installs leave verified (held), when they ran first
_RANGES = (
    "bytes=0-1,5-6",
    "bytes=-5",
    "bytes=5-",
    "bytes=5-2",
    "bytes=0-99999999999999999999",
    "bytes=18446744073709551616-18446744073709551617",
    "bytes=0-1073741824",
    "items=0-5",
    "bytes=abc",
    "bytes=" + "9" * 5000,
)
_PATHS = ("../../node_id", "..%2F..%2Fiplm.db", "etc/passwd", "%00", "a/../../mesh_key", "x" * 4000)


def _now_ms() -> int:
    return int(time.time() * 1000)


def probe_hostile_peers(unit: HostileUnit, keepsake: Keepsake) -> list[Probe]:
    """Every request is refused: 403 without a valid fresh signature, once-only with one, 4xx for bad ranges."""
    model = unit.hostile_models[0][0]
    manifest, piece = f"/mesh/models/{model}/manifest", f"/mesh/models/{model}/files/{_HELD}"
    stranger = derive_mesh_secrets(parse_mesh_key(create_mesh_key()))  # another mesh's key

    def signed(path: str, range_header: str = "", *, keys=unit.secrets, at: int | None = None) -> dict:
        header = sign_peer_request(keys, _NODE, "GET", path, range_header, now_ms=at or _now_ms())
        return {PEER_AUTH_HEADER: header, **({"Range": range_header} if range_header else {})}

    probes = []
    with httpx.Client(
        base_url=unit.url, timeout=30, transport=httpx.HTTPTransport(local_address=f"127.0.0.{_DEVICE}")
    ) as http:

        def ask(label: str, path: str, headers: dict, expect: tuple[int, ...] = (403,)) -> None:
            probes.append(send_hostile_request(http, label, "GET", path, headers=headers, expect=expect))

        ask("no signature", manifest, {})
        ask("garbage signature", manifest, {PEER_AUTH_HEADER: "let me in"})
        ask("forged MAC", manifest, {PEER_AUTH_HEADER: f"{_NODE}:{_now_ms()}:{secrets.token_hex(32)}"})
        ask("another mesh's key", manifest, signed(manifest, keys=stranger))
        ask("10 minutes old", manifest, signed(manifest, at=_now_ms() - 600_000))
        ask("10 minutes ahead", manifest, signed(manifest, at=_now_ms() + 600_000))
        ask("signed for another path", piece, {**signed(manifest), "Range": "bytes=0-1"})
        ask("signed for another range", piece, {**signed(piece, "bytes=0-1"), "Range": "bytes=0-100"})
        ask("a 12 KiB signature", manifest, {PEER_AUTH_HEADER: "a" * 12_000})
        first = signed(piece, "bytes=0-9")
        answered = http.get(piece, headers=first)  # a real peer's request, captured on the link
        probes.append(Probe("the captured request itself", answered.status_code, answered.status_code in (206, 404)))
        ask("the captured request replayed", piece, first)
        ask("the captured request replayed again", piece, first)
        for range_header in _RANGES:
            ask(f"Range {range_header[:40]}", piece, signed(piece, range_header), expect=())
        for path in _PATHS:
            full = f"/mesh/models/{model}/files/{path}"
            ask(f"file path {path[:30]}", full, signed(full, "bytes=0-9"), expect=())
        for bad_model in ("..", "%2e%2e", "x" * 300):
            full = f"/mesh/models/{bad_model}/manifest"
            ask(f"model id {bad_model[:30]}", full, signed(full), expect=())
    return probes
