"""The legacy axon wire shapes on the gateway side: request bodies as v10 dendrites send them, and
the answers they expect (echoed synapse with outputs, or ``{"message"}``, plus status headers).

The body models mirror ``protocol/legacy.py`` field for field, nested field order included,
because the signed body hash is Python ``str()`` of each ``model_dump()`` value: parsing the
body with the same shapes and dumping it again reproduces exactly what the dendrite hashed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from protocol.synapses import CapabilitiesResponse

__all__ = [
    "LEGACY_SYNAPSES",
    "CapabilitiesBody",
    "InferenceBody",
    "LegacySynapse",
    "capabilities_outputs",
    "echo_response",
    "error_response",
    "inference_outputs",
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


def _header_safe(text: str) -> str:
    """A header value: printable ASCII, one line, bounded (messages may quote caller input)."""
    cleaned = "".join(c if " " <= c <= "~" else "?" for c in text)
    return cleaned[:_MAX_HEADER_MESSAGE_CHARS]


def status_headers(
    name: str, status: int, message: str, *, axon_hotkey: str, started_s: float | None = None
) -> dict[str, str]:
    """The ``bt_header_axon_*`` status headers a v10 dendrite reads (they win over the body)."""
    headers = {
        "name": _header_safe(name),
        "bt_header_axon_status_code": str(status),
        "bt_header_axon_status_message": _header_safe(message),
        "bt_header_axon_hotkey": axon_hotkey,
    }
    if started_s is not None:
        headers["bt_header_axon_process_time"] = str(time.perf_counter() - started_s)
    return headers


def error_response(
    name: str,
    status: int,
    message: str,
    *,
    axon_hotkey: str,
    started_s: float | None = None,
    extra_headers: Mapping[str, str] | None = None,
) -> Response:
    """``{"message": ...}`` with the HTTP status and the matching status headers."""
    headers = dict(extra_headers or {})
    headers.update(status_headers(name, status, message, axon_hotkey=axon_hotkey, started_s=started_s))
    body = json.dumps({"message": message})
    return Response(body, status_code=status, headers=headers, media_type="application/json")


def inference_outputs(response_json: bytes | str) -> dict[str, Any]:
    """``Inference`` output fields from the gateway's own ``InferenceResponse`` JSON (already validated)."""
    answer = json.loads(response_json)
    return {key: answer.get(key) for key in _INFERENCE_OUTPUTS}


def capabilities_outputs(answer: CapabilitiesResponse) -> dict[str, Any]:
    """``Capabilities`` output fields."""
    return answer.model_dump(mode="json")


def echo_response(
    name: str, request_body: Mapping[str, Any], outputs: Mapping[str, Any], *, axon_hotkey: str, started_s: float
) -> Response:
    """200 with the request synapse echoed back, ``outputs`` filled in and the status set.

    Echoing every request field matters: the dendrite resets any field missing from the answer.
    """
    headers = status_headers(name, 200, "Success", axon_hotkey=axon_hotkey, started_s=started_s)
    axon = request_body.get("axon")
    body = {
        **request_body,
        **outputs,
        "axon": {
            **(axon if isinstance(axon, dict) else {}),
            "status_code": 200,
            "status_message": "Success",
            "process_time": float(headers["bt_header_axon_process_time"]),
            "hotkey": axon_hotkey,
        },
    }
    return Response(json.dumps(body), headers=headers, media_type="application/json")
