"""The legacy axon wire shapes on the gateway side: request bodies as v10 dendrites send them, and
the answers they expect (echoed synapse with outputs, or ``{"message"}``, plus status headers).

The body models mirror ``protocol/legacy.py`` field for field, nested field order included,
because the signed body hash is Python ``str()`` of each ``model_dump()`` value: parsing the
body with the same shapes and dumping it again reproduces exactly what the dendrite hashed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import from_json, to_json

from gateway._errors import GatewayError
from protocol.synapses import CapabilitiesResponse

__all__ = [
    "LEGACY_SYNAPSES",
    "CapabilitiesBody",
    "InferenceBody",
    "LegacySynapse",
    "capabilities_outputs",
    "echo_body",
    "error_body",
    "load_object",
    "status_headers",
]

_MAX_HEADER_MESSAGE_CHARS = 512
_INFERENCE_OUTPUTS = {"text", "token_ids", "logprobs", "ranks", "finish_reason", "usage", "model", "timings"}


class _Lenient(BaseModel):
    """Accept what a v10 synapse dump carries (terminal info, sizes, outputs) and ignore it."""

    model_config = ConfigDict(extra="ignore")


class _Message(_Lenient):
    role: str = "user"
    content: str = ""


class InferenceBody(_Lenient):
    """The signed inputs of ``Inference``/``InferenceStream`` (``protocol/legacy.py``)."""

    hash_fields: ClassVar[tuple[str, ...]] = ("messages", "max_tokens", "temperature", "top_p", "top_k", "seed")

    messages: list[_Message] = Field(default_factory=list)
    max_tokens: int = 128
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int | None = None


class CapabilitiesBody(_Lenient):
    """``Capabilities`` has no inputs, so its body hash is the constant empty-input hash."""

    hash_fields: ClassVar[tuple[str, ...]] = ()


@dataclass(frozen=True, slots=True)
class LegacySynapse:
    """One synapse the legacy route serves: its body shape and how it answers."""

    name: str
    body: type[InferenceBody] | type[CapabilitiesBody]
    streaming: bool = False


LEGACY_SYNAPSES: dict[str, LegacySynapse] = {
    s.name: s
    for s in (
        LegacySynapse("Inference", InferenceBody),
        LegacySynapse("InferenceStream", InferenceBody, streaming=True),
        LegacySynapse("Capabilities", CapabilitiesBody),
    )
}
"""Served synapses by route name (the v10 class name)."""


def _header_safe(text: str) -> bytes:
    """A header value: printable ASCII, one line, bounded (messages may quote caller input)."""
    cleaned = "".join(c if " " <= c <= "~" else "?" for c in text)
    return cleaned[:_MAX_HEADER_MESSAGE_CHARS].encode()


_SUCCESS = b"Success"


_SAFE_NAMES = {name: _header_safe(name) for name in (*LEGACY_SYNAPSES, "Synapse")}
"""The names the endpoint answers with, made header-safe once."""


def status_headers(
    name: str, status: int, message: str, *, axon_hotkey: str, process_time: str
) -> list[tuple[bytes, bytes]]:
    """The ``bt_header_axon_*`` status headers a v10 dendrite reads (they win over the body), as ASGI pairs."""
    safe_name = _SAFE_NAMES.get(name) or _header_safe(name)
    return [
        (b"name", safe_name),
        (b"bt_header_axon_status_code", str(status).encode()),
        (b"bt_header_axon_status_message", _SUCCESS if message == "Success" else _header_safe(message)),
        (b"bt_header_axon_hotkey", axon_hotkey.encode()),
        (b"bt_header_axon_process_time", process_time.encode()),
    ]


def error_body(message: str) -> bytes:
    """``{"message": ...}``: the body of every legacy error answer."""
    return to_json({"message": message})


def load_object(raw: bytes) -> dict[str, Any]:
    """The JSON object a dendrite sends; 400 ``GatewayError`` otherwise.

    Parsed like the stock axon's ``json.loads`` (exact integers of any size, ``NaN`` and
    ``Infinity`` accepted, correctly rounded floats: the body hash is over ``str()`` of these
    values), with pydantic-core's parser, which is several times faster.
    """
    try:
        value = from_json(raw) if raw.strip() else {}
    except ValueError:
        raise GatewayError(400, "malformed_json", "body is not valid JSON") from None
    if not isinstance(value, dict):
        raise GatewayError(400, "malformed_json", "body must be a JSON object (the synapse's fields)")
    return value


def capabilities_outputs(answer: CapabilitiesResponse) -> dict[str, Any]:
    """``Capabilities`` output fields."""
    return answer.model_dump(mode="json")


def echo_body(
    request_body: Mapping[str, Any], outputs: Mapping[str, Any] | BaseModel, *, axon_hotkey: str, process_time: str
) -> bytes:
    """The 200 body: the request synapse echoed back, ``outputs`` filled in and the axon status set.

    ``outputs`` is a dict of output fields, or the gateway's ``InferenceResponse`` (its
    ``Inference`` output fields, as its JSON serialisation writes them). Echoing every request
    field matters: the dendrite resets any field missing from the answer.
    """
    if isinstance(outputs, BaseModel):
        outputs = outputs.model_dump(mode="json", include=_INFERENCE_OUTPUTS)
    axon = request_body.get("axon")
    body = {
        **request_body,
        **outputs,
        "axon": {
            **(axon if isinstance(axon, dict) else {}),
            "status_code": 200,
            "status_message": "Success",
            "process_time": float(process_time),
            "hotkey": axon_hotkey,
        },
    }
    return to_json(body)
