"""A minimal dialect with no vendor's names: the engine's own vocabulary on the wire.

Client messages are JSON objects ``{"intent": "<Intent class name>", ...fields}``; facts go
out as ``{"fact": "<Fact class name>", ...fields}`` (errors as their kind and params). It
exists to test the engine apart from any API: if the engine needed something only the OpenAI
dialect gives it, these tests would show it.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from voxwire.session import events as ev


class IdentityDialect:
    name = "identity"
    audio_encoding = "base64"

    def __init__(self, ids: ev.IdFactory = ev.random_id) -> None:
        self.ids = ids

    def decode(self, message: str | bytes) -> ev.Intent:
        try:
            o = json.loads(message)
            kind = o.pop("intent")
            eid = o.pop("event_id", None)
            if kind == "AppendAudio":
                return ev.AppendAudio(eid, o["audio"])
            if kind == "CommitAudio":
                return ev.CommitAudio(eid)
            if kind == "ClearAudio":
                return ev.ClearAudio(eid)
            if kind == "CreateText":
                item = ev.Item(
                    o.get("id") or self.ids("item"),
                    "message",
                    "completed",
                    o.get("role", "user"),
                    (ev.Content("input_text", text=o["text"]),),
                )
                return ev.CreateItem(eid, item)
            if kind == "CreateResponse":
                mods = tuple(o["modalities"]) if "modalities" in o else None
                return ev.CreateResponse(eid, mods)  # type: ignore[arg-type]
            if kind == "CancelResponse":
                return ev.CancelResponse(eid, o.get("response_id"))
            if kind == "DeleteItem":
                return ev.DeleteItem(eid, o["item_id"])
            if kind == "Command":
                return ev.Command(eid, o["name"], o.get("payload"))
            if kind == "UpdateSession":
                td = o.get("turn_detection", ev.UNSET)
                if isinstance(td, dict):
                    td = ev.TurnDetection(**td)
                return ev.UpdateSession(eid, turn_detection=td)
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            return ev.BadMessage(None, "bad", f"bad message: {e}")
        return ev.BadMessage(eid, "unknown", f"unknown intent {kind!r}")

    def encode(self, fact: ev.Fact) -> str:
        d: dict[str, Any] = {"fact": type(fact).__name__}
        for f in dataclasses.fields(fact):
            v = getattr(fact, f.name)
            d[f.name] = dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v
        return json.dumps(d, default=str)
