"""The conversation of a session: its items, oldest first, with their audio, within limits.

A store with no facts of its own: :class:`Conversation` adds, finds, replaces, removes and
trims items, keeps their byte count, sets user transcripts and gives the history an agent
sees. The session (:class:`voxwire.session.Session`) tells the client what changed; the
response lifecycle (:mod:`voxwire.session.response`) adds the response's output items.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from voxwire.session import events as ev


@dataclass
class ItemRecord:
    """One conversation item as the session keeps it: the item and its audio."""

    item: ev.Item
    audio: npt.NDArray[np.int16] | None = None
    audio_rate: int = 0
    #: Output audio sent for an assistant item, in ms.
    audio_ms: float = 0.0

    def nbytes(self) -> int:
        """What the item keeps in memory, roughly: its audio and its text."""
        n = 0 if self.audio is None else int(self.audio.nbytes)
        it = self.item
        n += len(it.arguments or "") + len(it.output or "")
        for c in it.content:
            n += len(c.text or "") + len(c.transcript or "") + len(c.image_url or "")
        return n


class Conversation:
    """The items of one session, oldest first, at most ``max_items`` and ``max_bytes``.

    Past either limit the oldest items go first, never the newest one nor the ``pinned``
    item (the message of the response in progress).
    """

    def __init__(self, *, max_items: int, max_bytes: int) -> None:
        self.max_items = max_items
        self.max_bytes = max_bytes
        #: The items with their audio, oldest first.
        self.records: list[ItemRecord] = []
        #: What the records keep in memory (:meth:`ItemRecord.nbytes`), in total.
        self.nbytes = 0
        #: The id of an item trimming must keep (the response in progress's message).
        self.pinned: str | None = None

    @property
    def items(self) -> tuple[ev.Item, ...]:
        """The items, oldest first (as clients see them: no audio)."""
        return tuple(r.item for r in self.records)

    def __len__(self) -> int:
        return len(self.records)

    def last_id(self) -> str | None:
        """The newest item's id (None: the conversation is empty)."""
        return self.records[-1].item.id if self.records else None

    def previous_id(self, rec: ItemRecord) -> str | None:
        """The id of the item before ``rec`` (None: ``rec`` is the first)."""
        k = self.records.index(rec)
        return self.records[k - 1].item.id if k > 0 else None

    def find(self, item_id: str) -> ItemRecord | None:
        """The record of item ``item_id``, if it is in the conversation."""
        return next((r for r in self.records if r.item.id == item_id), None)

    def add(self, rec: ItemRecord, after: str | None = None) -> None:
        """Add ``rec``: last (``after`` None), first (``"root"``) or after item ``after``.

        Then trims to the limits.
        """
        if after is None:
            self.records.append(rec)
        elif after == "root":
            self.records.insert(0, rec)
        else:
            at = next(k for k, r in enumerate(self.records) if r.item.id == after)
            self.records.insert(at + 1, rec)
        self.nbytes += rec.nbytes()
        self.trim()

    def trim(self) -> None:
        """Drop the oldest items past ``max_items`` or ``max_bytes``.

        Never the newest one, nor the pinned item.
        """
        items = self.records
        k = 0
        while len(items) - k > 1 and (len(items) > self.max_items or self.nbytes > self.max_bytes):
            if items[k].item.id == self.pinned:
                k += 1
                continue
            self.nbytes -= items.pop(k).nbytes()

    def remove(self, rec: ItemRecord) -> None:
        """Take ``rec`` out of the conversation."""
        self.records.remove(rec)
        self.nbytes -= rec.nbytes()

    def replace(self, rec: ItemRecord, item: ev.Item) -> None:
        """Put ``item`` in ``rec``'s place (its new version: same id, new content)."""
        self.nbytes -= rec.nbytes()
        rec.item = item
        self.nbytes += rec.nbytes()

    def truncate_audio(self, rec: ItemRecord, audio_end_ms: float) -> None:
        """Cut assistant audio item ``rec`` at ``audio_end_ms``.

        Its transcript no longer matches what the user heard: dropped, as OpenAI does.
        """
        rec.audio_ms = float(audio_end_ms)
        it = rec.item
        self.replace(
            rec, replace(it, content=tuple(replace(c, transcript=None) for c in it.content))
        )

    def set_transcript(self, item_id: str, transcript: str) -> tuple[int, float] | None:
        """Set the ASR's transcript on user item ``item_id``'s (first) ``input_audio`` part.

        Returns the part's index and the seconds of audio transcribed, or None when there is
        no such item (deleted, or trimmed) or part.
        """
        rec = self.find(item_id)
        if rec is None or rec.item.role != "user":
            return None
        parts = rec.item.content
        idx = next((k for k, c in enumerate(parts) if c.type == "input_audio"), None)
        if idx is None:
            return None
        new = replace(parts[idx], transcript=transcript)
        self.replace(rec, replace(rec.item, content=(*parts[:idx], new, *parts[idx + 1 :])))
        seconds = len(rec.audio) / rec.audio_rate if rec.audio is not None else 0.0
        if rec.audio is not None and rec.audio_rate <= 0:
            seconds = 0.0
        return idx, seconds

    def latest_user(self) -> tuple[int, ItemRecord] | None:
        """The newest user item and its index."""
        for k in range(len(self.records) - 1, -1, -1):
            if self.records[k].item.role == "user":
                return k, self.records[k]
        return None

    def latest_system_text(self) -> str | None:
        """The text of the newest system item (an external event's), if any."""
        return next(
            (
                " ".join(c.text for c in rec.item.content if c.text)
                for rec in reversed(self.records)
                if rec.item.role == "system"
            ),
            None,
        )

    def history(self, end: int) -> tuple[ev.HistoryItem, ...]:
        """The first ``end`` items as the agent sees them (no audio)."""
        out: list[ev.HistoryItem] = []
        for rec in self.records[:end]:
            it = rec.item
            if it.type == "function_call":
                out.append(
                    ev.HistoryItem(
                        "assistant",
                        name=it.name,
                        arguments=it.arguments,
                        call_id=it.call_id,
                        item_id=it.id,
                    )
                )
            elif it.type == "function_call_output":
                out.append(
                    ev.HistoryItem("tool", call_id=it.call_id, output=it.output, item_id=it.id)
                )
            elif it.status != "in_progress":
                text = " ".join(c.text or c.transcript or "" for c in it.content).strip()
                out.append(ev.HistoryItem(it.role or "user", text, item_id=it.id))
        return tuple(out)


__all__ = ["Conversation", "ItemRecord"]
