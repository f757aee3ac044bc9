"""Data shapes of the portal: what the unit tells clients about itself, and API errors."""

from __future__ import annotations

from dataclasses import dataclass

from appliance.engine.engine_types import ChatParams, ThinkingAsk


@dataclass(frozen=True)
class ChatDefaults:
    """The unit's recommended sampling defaults (from the device probe, overridable in settings)."""

    max_tokens: int = 512
    temperature: float = 0.7
    top_p: float = 0.95


@dataclass(frozen=True)
class UnitInfo:
    node_id: str
    name: str  # "iplm-1a2b": also the Wi-Fi SSID
    defaults: ChatDefaults
    device: dict  # the DeviceProfile as a dict, for display


class ApiError(Exception):
    """A client error, rendered in OpenAI's error shape: {"error": {message, type, param, code}}."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        kind: str = "invalid_request_error",
        retry_after_s: float | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.kind = kind
        self.retry_after_s = retry_after_s  # sent as Retry-After (429, 503)

    def to_json(self) -> dict:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


@dataclass(frozen=True)
class ParsedChat:
    """A validated OpenAI chat-completions request."""

    model: str
    messages: tuple[dict, ...]
    params: ChatParams
    stream: bool
    include_usage: bool
    # iplm_split: the prompt may be cut into pieces answered in parallel (appliance/split); on by default.
    split: bool = True
    # reasoning_effort "medium" / "high" (and iplm_thinking's budget): think before answering; None: answer.
    thinking: ThinkingAsk | None = None
