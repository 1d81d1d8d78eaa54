"""The session engine's event model: one vocabulary for every dialect.

Three kinds of frozen dataclasses:

- **Intents** (client -> engine): what a client asked for, decoded from its wire format by a
  dialect (:class:`UpdateSession`, :class:`AppendAudio`, :class:`CommitAudio`, ...). A
  message that cannot be decoded becomes a :class:`BadMessage`.
- **Facts** (engine -> client): what happened, encoded to the wire by the dialect
  (:class:`SessionCreated`, :class:`InputSpeechStarted`, :class:`AudioDelta`,
  :class:`ResponseDone`, :class:`Error`, ...).
- **Requests** (engine -> driver): what the transport around the engine must do: start or
  cancel an agent response, close the connection.

``Session.events()`` returns facts and requests in the order they happened.
docs/session.md maps these to the five seed APIs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

AudioFormat = Literal["pcm16", "g711_ulaw", "g711_alaw"]
Modality = Literal["text", "audio"]

#: Sample rate of each wire audio format in the OpenAI dialect (pcm16 is 24 kHz there; other
#: dialects set the session's ``input_rate`` / ``output_rate`` themselves).
FORMAT_RATE: dict[str, int] = {"pcm16": 24000, "g711_ulaw": 8000, "g711_alaw": 8000}

#: Makes ids: ``ids("item")`` -> ``"item_..."``. Injectable (a counter in golden tests).
IdFactory = Callable[[str], str]


def random_id(prefix: str) -> str:
    """``prefix`` + ``_`` + 20 random hex digits (the default id factory)."""
    import secrets

    return f"{prefix}_{secrets.token_hex(10)}"


class SequentialIds:
    """A deterministic id factory: ``item_0001``, ``item_0002``, ... (per prefix)."""

    def __init__(self) -> None:
        self._n: dict[str, int] = {}

    def __call__(self, prefix: str) -> str:
        """The next id of ``prefix``."""
        k = self._n.get(prefix, 0) + 1
        self._n[prefix] = k
        return f"{prefix}_{k:04d}"


# --------------------------------------------------------------------------------------
# Session state


Eagerness = Literal["low", "medium", "high", "auto"]

#: The ``eagerness`` values of ``semantic_vad`` (``auto`` is ``medium``, as OpenAI documents;
#: the waits of each are the input pipeline's: docs/design/turns.md).
EAGERNESS_VALUES: tuple[str, ...] = ("low", "medium", "high", "auto")


@dataclass(frozen=True)
class TurnDetection:
    """Turn detection settings: OpenAI ``server_vad`` or ``semantic_vad``.

    ``type`` ``semantic_vad`` ends a turn by the semantic rule at ``eagerness``
    (``silence_duration_ms`` then serves only when the noise makes the rule's judgement
    untrustworthy, as server_vad's wait; docs/design/turns.md).
    """

    threshold: float = 0.5
    prefix_padding_ms: int = 300
    silence_duration_ms: int = 500
    create_response: bool = True
    interrupt_response: bool = True
    type: Literal["server_vad", "semantic_vad"] = "server_vad"
    eagerness: Eagerness = "auto"


@dataclass(frozen=True)
class SessionState:
    """The effective session configuration, as ``session.created`` / ``updated`` show it."""

    id: str
    model: str
    input_format: AudioFormat = "pcm16"
    output_format: AudioFormat = "pcm16"
    #: Sample rates of the wire audio, in and out (set by the dialect with the formats).
    input_rate: int = 24000
    output_rate: int = 24000
    turn_detection: TurnDetection | None = field(default_factory=TurnDetection)
    modalities: tuple[Modality, ...] = ("audio",)
    instructions: str = ""
    voice: str = "alloy"
    #: Whether the client asked for transcripts of its audio (OpenAI
    #: ``input_audio_transcription``): ``InputTranscriptionCompleted`` facts are sent only
    #: then. Agents get transcripts whenever the server has an ASR.
    transcription: bool = False
    #: The functions the agent may call.
    tools: tuple[ToolSpec, ...] = ()
    #: Which tool the agent must call: ``auto``, ``none``, ``required``, or a tool's name.
    tool_choice: str = "auto"


#: Marks a setting that an update does not touch.
class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET = _Unset()


# --------------------------------------------------------------------------------------
# Conversation items


@dataclass(frozen=True)
class Content:
    """One content part.

    ``type`` is ``input_text``, ``input_audio``, ``input_image``, ``text`` or ``audio``
    (dialects rename, e.g. OpenAI GA calls assistant parts ``output_text``/``output_audio``).
    An image has ``image_url`` (a URL or a ``data:`` URL) and ``detail``.
    """

    type: Literal["input_text", "input_audio", "input_image", "text", "audio"]
    text: str | None = None
    transcript: str | None = None
    image_url: str | None = None
    detail: str | None = None


@dataclass(frozen=True)
class Item:
    """A conversation item as clients see it (audio samples stay in the engine)."""

    id: str
    type: Literal["message", "function_call", "function_call_output"]
    status: Literal["completed", "in_progress", "incomplete"]
    role: Literal["user", "assistant", "system"] | None = None
    content: tuple[Content, ...] = ()
    call_id: str | None = None
    name: str | None = None
    arguments: str | None = None
    output: str | None = None


@dataclass(frozen=True)
class Response:
    """A response as clients see it."""

    id: str
    status: Literal["in_progress", "completed", "cancelled", "failed", "incomplete"]
    modalities: tuple[Modality, ...]
    output_format: AudioFormat
    voice: str
    output: tuple[Item, ...] = ()
    #: ``client_cancelled`` / ``turn_detected`` for cancelled responses.
    reason: str | None = None
    error: str | None = None
    output_tokens: int = 0
    input_tokens: int = 0
    #: The client's own key-value pairs from the request (OpenAI ``metadata``).
    metadata: dict[str, str] | None = None


# --------------------------------------------------------------------------------------
# Intents (client -> engine)


@dataclass(frozen=True)
class Intent:
    """Base of the client intents; ``event_id`` is the client's own id, if it sent one."""

    event_id: str | None


@dataclass(frozen=True)
class UpdateSession(Intent):
    """Change session settings; fields left ``UNSET`` keep their value."""

    input_format: AudioFormat | _Unset = UNSET
    output_format: AudioFormat | _Unset = UNSET
    input_rate: int | _Unset = UNSET
    output_rate: int | _Unset = UNSET
    turn_detection: TurnDetection | _Unset | None = UNSET
    modalities: tuple[Modality, ...] | _Unset = UNSET
    instructions: str | _Unset = UNSET
    voice: str | _Unset = UNSET
    transcription: bool | _Unset = UNSET
    #: The functions the agent may call (replacing the session's).
    tools: tuple[ToolSpec, ...] | _Unset = UNSET
    tool_choice: str | _Unset = UNSET


@dataclass(frozen=True)
class AppendAudio(Intent):
    """Audio for the input buffer, as the client encoded it (base64 text or raw bytes)."""

    audio: str | bytes


@dataclass(frozen=True)
class CommitAudio(Intent):
    """Turn the input buffer into a user item."""


@dataclass(frozen=True)
class ClearAudio(Intent):
    """Drop the input buffer."""


@dataclass(frozen=True)
class CreateItem(Intent):
    """Add an item.

    ``audio`` holds the base64 PCM16 audio of ``input_audio`` parts (with their part index)
    at ``audio_rate``; ``previous_item_id`` ``None`` appends, ``"root"`` inserts first.
    """

    item: Item
    previous_item_id: str | None = None
    audio: tuple[tuple[int, str], ...] = ()
    audio_rate: int = 24000


@dataclass(frozen=True)
class TruncateItem(Intent):
    """Cut an assistant audio item at ``audio_end_ms`` (what the client played)."""

    item_id: str
    content_index: int
    audio_end_ms: int


@dataclass(frozen=True)
class DeleteItem(Intent):
    """Remove an item."""

    item_id: str


@dataclass(frozen=True)
class RetrieveItem(Intent):
    """Ask for an item."""

    item_id: str


@dataclass(frozen=True)
class CreateResponse(Intent):
    """Ask the agent to answer; unset fields take the session's values."""

    modalities: tuple[Modality, ...] | None = None
    instructions: str | None = None
    #: What the agent answers: the latest ``user`` input, or ``tool_results`` /
    #: ``external_event`` (the last history items; see :class:`UserTurn`).
    kind: Literal["user", "tool_results", "external_event"] = "user"
    #: The client's key-value pairs, shown back on the response.
    metadata: dict[str, str] | None = None
    #: This response's tools and tool choice (None: the session's).
    tools: tuple[ToolSpec, ...] | None = None
    tool_choice: str | None = None


@dataclass(frozen=True)
class CancelResponse(Intent):
    """Cancel the response in progress (or the one named)."""

    response_id: str | None = None


@dataclass(frozen=True)
class Command(Intent):
    """A dialect's own command, beyond the engine's vocabulary.

    Signing in, listing agents, continuing a stored conversation...: the engine hands it to
    the driver, which runs the dialect plugin's async command handler with the platform at
    hand (see :class:`voxwire.dialects.base.Accept`). ``name`` and ``payload`` are the
    dialect's.
    """

    name: str
    payload: Any = None


@dataclass(frozen=True)
class BadMessage(Intent):
    """A message the dialect could not decode: becomes an :class:`Error` fact."""

    code: str
    message: str
    param: str | None = None


# --------------------------------------------------------------------------------------
# Facts (engine -> client)


@dataclass(frozen=True)
class Fact:
    """Base of the facts the engine tells its client."""


@dataclass(frozen=True)
class SessionCreated(Fact):
    """The session exists (the first message of every connection)."""

    session: SessionState


@dataclass(frozen=True)
class SessionUpdated(Fact):
    """The session's settings changed."""

    session: SessionState


@dataclass(frozen=True)
class InputSpeechStarted(Fact):
    """Speech began (``audio_start_ms`` includes the prefix padding)."""

    audio_start_ms: int
    item_id: str


@dataclass(frozen=True)
class InputSpeechStopped(Fact):
    """Speech ended (``audio_end_ms`` includes the silence that ended it)."""

    audio_end_ms: int
    item_id: str


@dataclass(frozen=True)
class AudioCommitted(Fact):
    """The input buffer became user item ``item_id``."""

    item_id: str
    previous_item_id: str | None


@dataclass(frozen=True)
class AudioCleared(Fact):
    """The input buffer was dropped."""


@dataclass(frozen=True)
class ItemAdded(Fact):
    """An item joined the conversation (after ``previous_item_id``)."""

    item: Item
    previous_item_id: str | None


@dataclass(frozen=True)
class ItemDone(Fact):
    """An item is complete."""

    item: Item
    previous_item_id: str | None


@dataclass(frozen=True)
class ItemRetrieved(Fact):
    """An item, as asked for."""

    item: Item


@dataclass(frozen=True)
class ItemDeleted(Fact):
    """An item left the conversation."""

    item_id: str


@dataclass(frozen=True)
class ItemTruncated(Fact):
    """An assistant audio item was cut at ``audio_end_ms``."""

    item_id: str
    content_index: int
    audio_end_ms: int


@dataclass(frozen=True)
class InputTranscriptionCompleted(Fact):
    """The ASR's transcript of user item ``item_id``'s audio part ``content_index``.

    Emitted only when the session's ``transcription`` setting is on (the item is updated
    either way).
    """

    item_id: str
    content_index: int
    transcript: str
    #: How much audio was transcribed, in seconds (OpenAI's ``usage`` by duration).
    audio_seconds: float = 0.0


@dataclass(frozen=True)
class InputTranscriptionDelta(Fact):
    """The ASR's partial hypothesis of the user's turn in progress (item ``item_id``).

    ``text`` is the whole turn so far as the ASR hears it now, not an increment: a later
    one may revise earlier words. Emitted while the user speaks (server VAD), only when the
    session's ``transcription`` setting is on and the server has a partial ASR; the turn's
    :class:`InputTranscriptionCompleted` follows once it is committed, and no delta of that
    item comes after the turn ends. Dialects without such an event ignore it.
    """

    item_id: str
    text: str


@dataclass(frozen=True)
class ResponseCreated(Fact):
    """A response started."""

    response: Response


@dataclass(frozen=True)
class OutputItemAdded(Fact):
    """A response added an output item."""

    response_id: str
    output_index: int
    item: Item


@dataclass(frozen=True)
class OutputItemDone(Fact):
    """A response's output item is complete."""

    response_id: str
    output_index: int
    item: Item


@dataclass(frozen=True)
class PartFact(Fact):
    """Base of the facts about one content part of a response's output item."""

    response_id: str
    item_id: str
    output_index: int
    content_index: int


@dataclass(frozen=True)
class ContentPartAdded(PartFact):
    """A content part of an output item started."""

    part: Content


@dataclass(frozen=True)
class ContentPartDone(PartFact):
    """A content part of an output item is complete."""

    part: Content


@dataclass(frozen=True)
class ResponseTextDelta(PartFact):
    """A piece of a text answer."""

    delta: str


@dataclass(frozen=True)
class TextDone(PartFact):
    """The whole text of a text answer."""

    text: str


@dataclass(frozen=True)
class TranscriptDelta(PartFact):
    """A piece of an audio answer's transcript."""

    delta: str


@dataclass(frozen=True)
class TranscriptDone(PartFact):
    """The whole transcript of an audio answer."""

    transcript: str


@dataclass(frozen=True)
class AudioDelta(PartFact):
    """Encoded output audio: base64 text, or raw bytes for dialects with binary audio."""

    delta: str | bytes


@dataclass(frozen=True)
class SpeechMarks(PartFact):
    """When the answer's audio speaks which characters of its transcript.

    ``marks`` are ``(ms, character)``: ms from the start of the response's audio (as the
    agent produced it), one per character of the transcript, in order. Sent before the audio
    they describe, when the agent's TTS reports its timing.
    """

    marks: tuple[tuple[float, str], ...]


@dataclass(frozen=True)
class AudioDone(PartFact):
    """An audio answer's audio is complete."""


@dataclass(frozen=True)
class ThoughtDelta(Fact):
    """A piece of the agent's reasoning ("thinking"), apart from its answer.

    Not part of the conversation: dialects whose API shows reasoning send it, others drop it.
    """

    response_id: str
    item_id: str
    delta: str


@dataclass(frozen=True)
class FunctionCallArgumentsDone(Fact):
    """The agent called a tool with these arguments."""

    response_id: str
    item_id: str
    output_index: int
    call_id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class FunctionCallOutputDone(Fact):
    """A tool the agent ran itself (server side) returned ``output`` for call ``call_id``.

    ``name`` is the called tool's name ("" when the call is no longer in the conversation).
    """

    response_id: str
    item_id: str
    call_id: str
    name: str
    output: str


@dataclass(frozen=True)
class ResponseDone(Fact):
    """A response ended: completed, cancelled (with the reason) or failed."""

    response: Response


@dataclass(frozen=True)
class ConversationEnded(Fact):
    """The agent ended the conversation (``reason``: why, in the agent's words)."""

    reason: str


@dataclass(frozen=True)
class RateLimit:
    """One rate limit's state."""

    name: str
    limit: int
    remaining: int
    reset_seconds: float


@dataclass(frozen=True)
class RateLimitsUpdated(Fact):
    """The session's rate limits after a response."""

    rate_limits: tuple[RateLimit, ...]


#: What went wrong, as the engine knows it; each dialect renders a kind (with its
#: ``params``) in its own words, codes and shapes. The params of each kind:
#:
#: - ``bad_message``: ``code``, ``message``, ``param`` (the dialect's decoder wrote them)
#: - ``idle_timeout``: ``seconds``
#: - ``rate_limited``: ``what`` (``messages`` or ``responses``), ``limit`` (per minute)
#: - ``audio_empty``: none
#: - ``audio_invalid``: ``detail``, ``format``, ``rate``
#: - ``buffer_full``: ``max_ms``, ``format``, ``rate``
#: - ``commit_too_small``: ``ms``, ``min_ms``
#: - ``item_exists``: ``item_id``
#: - ``previous_item_missing``: ``item_id``
#: - ``item_audio_invalid``: ``index``, ``detail``, ``rate``
#: - ``item_missing``: ``op`` (``truncate``, ``delete``, ``retrieve``), ``item_id``
#: - ``truncate_not_audio``, ``truncate_invalid``: none
#: - ``truncate_too_long``: ``audio_ms``, ``end_ms``
#: - ``response_busy``: ``response_id``
#: - ``cancel_not_active``: ``response_id`` (None when the client named none)
#: - ``agent_notice``: ``code``, ``message`` (the agent's own)
#: - ``internal``: ``detail``
ErrorKind = Literal[
    "bad_message",
    "idle_timeout",
    "rate_limited",
    "audio_empty",
    "audio_invalid",
    "buffer_full",
    "commit_too_small",
    "item_exists",
    "previous_item_missing",
    "item_audio_invalid",
    "item_missing",
    "truncate_not_audio",
    "truncate_invalid",
    "truncate_too_long",
    "response_busy",
    "cancel_not_active",
    "agent_notice",
    "internal",
]


@dataclass(frozen=True)
class Error(Fact):
    """A non-fatal error: the session goes on. ``event_id`` is the client event's id.

    The dialect renders ``kind`` and ``params`` (see :data:`ErrorKind`).
    """

    kind: ErrorKind
    params: dict[str, Any] = field(default_factory=dict)
    event_id: str | None = None


# --------------------------------------------------------------------------------------
# Requests (engine -> driver)


@dataclass(frozen=True)
class HistoryItem:
    """One item of the conversation so far, as an agent sees it.

    ``role`` is ``user``, ``assistant`` or ``system`` for messages (``text`` holds their text,
    or the transcript of their audio), ``assistant`` with ``name``/``arguments``/``call_id``
    for a tool call, and ``tool`` with ``call_id``/``output`` for a tool's result.
    """

    role: str
    text: str = ""
    name: str | None = None
    arguments: str | None = None
    call_id: str | None = None
    output: str | None = None
    item_id: str | None = None


@dataclass(frozen=True)
class ToolSpec:
    """A function the agent may call: a JSON-schema function definition.

    ``client``: the client runs it (OpenAI's function tools): the agent's response ends
    with the call, and the result comes back as a ``function_call_output`` item before the
    next response. Otherwise the agent runs it itself (a server-side tool).
    """

    name: str
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)
    client: bool = False


@dataclass(frozen=True)
class SessionContext:
    """Who and what a session is for, set by the dialect's handshake.

    ``principal`` is the authenticated client (:class:`voxwire.auth.Principal`), ``agent_id``
    the registry's agent it talks to, ``variables`` the values the API lets a client pass for
    the agent's templates, ``conversation_id`` the stored conversation it continues.
    """

    principal: Any = None
    agent_id: str = ""
    variables: dict[str, str] = field(default_factory=dict)
    conversation_id: str | None = None


@dataclass(frozen=True)
class UserTurn:
    """What an agent answers.

    The latest user input: text, or audio (int16 at ``sample_rate``) with its transcript
    when an ASR produced one. ``kind`` is ``user`` (an answer to the user), ``greeting``
    (the agent speaks first, no user input), ``tool_results`` (answer the tools' results,
    the last ``history`` items) or ``external_event`` (context the client injected).
    ``history`` is the conversation before this turn's input, oldest first; ``tools`` the
    functions the agent may call; ``context`` the session's principal, agent and variables.
    """

    item_id: str | None
    text: str | None
    audio: npt.NDArray[np.int16] | None
    sample_rate: int
    transcript: str | None
    modalities: tuple[Modality, ...]
    instructions: str
    kind: Literal["user", "greeting", "tool_results", "external_event"] = "user"
    history: tuple[HistoryItem, ...] = ()
    tools: tuple[ToolSpec, ...] = ()
    context: SessionContext = field(default_factory=SessionContext)
    #: The session's voice (a TTS speaks with it when it knows it, else with its own).
    voice: str = ""
    #: The images of the user's input (``input_image`` parts): URLs or ``data:`` URLs.
    images: tuple[str, ...] = ()
    #: Which tool the agent must call: ``auto``, ``none``, ``required`` or a tool's name.
    tool_choice: str = "auto"


@dataclass(frozen=True)
class StartResponse:
    """The driver must run the agent on ``turn`` and feed its output back."""

    response_id: str
    turn: UserTurn


@dataclass(frozen=True)
class StopResponse:
    """The driver must stop the agent task of ``response_id`` (cancelled or finished)."""

    response_id: str


@dataclass(frozen=True)
class Close:
    """The driver must close the connection with ``code`` and ``reason``."""

    code: int
    reason: str


@dataclass(frozen=True)
class RunCommand:
    """The driver must run the dialect's handler for ``command`` (in arrival order)."""

    command: Command


Event = Fact | StartResponse | StopResponse | Close | RunCommand
