"""The work service's edge: whole chats sent to the peer that finishes them soonest, and peers' chats run here.

Decisions are pure (choose_chat_unit, apply_remote_chat_event, apply_served_job_event); this module feeds them
the agent's messages, the engine's events and a clock, and performs what they ask: send a job or a result,
run a chat on the engine, cancel one, fall back to this unit.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import logging
import queue
import random
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from appliance.engine.engine_types import CancelSignal, ChatEvent, ChatRequest, ChatStream, Engine, EngineError
from appliance.mesh.agent.mesh_agent_types import MeshAgent
from appliance.mesh.agent.parse_presence import parse_presence
from appliance.mesh.agent.presence_types import UnitLoad
from appliance.mesh.work.accept_chat_job import accept_chat_job
from appliance.mesh.work.apply_remote_chat_event import apply_remote_chat_event
from appliance.mesh.work.apply_served_job_event import apply_served_job_event
from appliance.mesh.work.can_take_chats import can_take_chats
from appliance.mesh.work.choose_chat_unit import choose_chat_unit
from appliance.mesh.work.count_ready_slots import count_ready_slots
from appliance.mesh.work.encode_chat_job import encode_chat_job
from appliance.mesh.work.read_chat_job import JOB_ID, read_chat_job
from appliance.mesh.work.remote_chat_types import (
    KEEPALIVE_S,
    MAX_CHARS_PER_TOKEN,
    MAX_RESULT_TEXT,
    CancelOnPeer,
    ClientLeft,
    Deliver,
    PeerLost,
    RemoteChat,
    RemoteTicked,
    ResultArrived,
    RunElsewhere,
)
from appliance.mesh.work.served_job_types import (
    Answer,
    JobCancelled,
    JobEnded,
    JobOffered,
    RunJob,
    ServedEvent,
    ServedJobs,
    StopJob,
)
from appliance.mesh.work.work_types import FORWARD_OVERHEAD_S, TYPICAL_REPLY_TOKENS, ChatCost, ChatWork

_log = logging.getLogger("iplm.mesh.work")
_POLL_S = 0.25
# Deltas of a chat run for a peer go out in batches: every this often, or sooner when this much text waits.
_FLUSH_S = 0.2
_FLUSH_CHARS = 2048
# Characters per token, roughly, for weighing a prompt before any tokenizer has seen it.
_CHARS_PER_TOKEN = 4


@dataclass(eq=False)
class _Edge:
    node_id: str
    current_engine: Callable[[], Engine]
    find_agent: Callable[[], MeshAgent | None]
    parse_request: Callable[[dict], ChatRequest]
    rng: random.Random
    # Phones' client keys (an address on the unit's Wi-Fi) leave the unit only as a keyed hash: a peer can
    # queue each phone fairly without learning anything of it.
    salt: bytes = field(default_factory=lambda: secrets.token_bytes(16))
    lock: threading.Lock = field(default_factory=threading.Lock)
    # One placement at a time, each registered before the next is weighed: chats that arrive together see
    # each other (else all of them pick the same idle peer, which then declines most).
    placing: threading.Lock = field(default_factory=threading.Lock)
    pending_here: int = 0  # chats placed on this unit that its engine has not started yet
    served: ServedJobs = field(default_factory=ServedJobs)
    cancels: dict[tuple[str, str], threading.Event] = field(default_factory=dict)
    # job -> (the peer running it, its results, when it was sent: epoch s, as the peer table's last_seen)
    inboxes: dict[str, tuple[str, queue.Queue, float]] = field(default_factory=dict)


def _read_load(engine: Engine, node_id: str) -> UnitLoad:
    # The same reading as a peer's presence gets: one set of bounds for every load figure.
    return parse_presence({"node": node_id, "load": engine.describe_status()}, node_id).load


def _send(edge: _Edge, kind: str, node: str, payload: dict) -> bool:
    agent = edge.find_agent()
    return agent is not None and agent.send_work(kind, node, payload)  # type: ignore[arg-type]


# --- chats run here for peers --------------------------------------------------------------------------


def _apply_served(edge: _Edge, event: ServedEvent) -> None:
    with edge.lock:
        edge.served, effects = apply_served_job_event(edge.served, event)
        if isinstance(event, JobOffered):
            for effect in effects:
                if isinstance(effect, RunJob):
                    edge.cancels[(effect.sender, effect.job)] = threading.Event()
    for effect in effects:
        if isinstance(effect, Answer):
            _send(edge, "result", effect.sender, effect.payload)
        elif isinstance(effect, RunJob):
            name = f"iplm-job-{effect.job[:6]}"
            threading.Thread(target=_run_job, args=(edge, effect), name=name, daemon=True).start()
        elif isinstance(effect, StopJob):
            with edge.lock:
                cancel = edge.cancels.get((effect.sender, effect.job))
            if cancel is not None:
                cancel.set()


def _keep_alive(edge: _Edge, sender: str, job: str, started: threading.Event, cancel: threading.Event) -> None:
    # While the chat waits in this unit's queue, the sender hears that the job is alive.
    while not started.wait(KEEPALIVE_S) and not cancel.is_set():
        _send(edge, "result", sender, {"type": "keepalive", "job": job})


def _run_job(edge: _Edge, effect: RunJob) -> None:
    sender, job = effect.sender, effect.job
    with edge.lock:
        cancel = edge.cancels[(sender, job)]
    started = threading.Event()

    def send(payload: dict) -> None:
        if not _send(edge, "result", sender, {**payload, "job": job}):
            cancel.set()  # nobody to send to: the sender runs the chat elsewhere; stop here

    threading.Thread(target=_keep_alive, args=(edge, sender, job, started, cancel), daemon=True).start()
    _log.info("running chat %s for %s", job, sender)
    ended = "failed"
    try:
        events = edge.current_engine().stream_chat(effect.request, cancel)
        first = next(events)
        started.set()
        if first.kind != "start":  # cancelled while queued
            ended = "cancelled"
            return
        send({"type": "start", "prompt_tokens": first.prompt_tokens, "dropped_messages": first.dropped_messages})
        seq, pending, flushed = 0, "", time.monotonic()
        for event in events:
            if event.kind == "delta":
                pending += event.text
                if pending and (time.monotonic() - flushed >= _FLUSH_S or len(pending) >= _FLUSH_CHARS):
                    send({"type": "delta", "seq": seq, "text": pending})
                    seq, pending, flushed = seq + 1, "", time.monotonic()
            elif event.kind == "done":
                if pending:
                    send({"type": "delta", "seq": seq, "text": pending})
                    seq += 1
                ended = event.finish_reason or "stop"
                send(
                    {
                        "type": "done",
                        "seq": seq,
                        "finish_reason": ended,
                        "prompt_tokens": event.prompt_tokens,
                        "completion_tokens": event.completion_tokens,
                    }
                )
    except EngineError as exc:
        ended = f"refused ({exc.code})"
        send({"type": "error", "code": exc.code, "message": exc.message[:300], "status": exc.status})
    except Exception:  # the engine broke mid-reply: the sender hears nothing more and runs it elsewhere
        _log.exception("running chat %s for %s failed", job, sender)
    finally:
        started.set()
        _log.info("chat %s for %s ended: %s", job, sender, ended)
        with edge.lock:
            edge.cancels.pop((sender, job), None)
        _apply_served(edge, JobEnded(sender, job))


def _take_job(edge: _Edge, sender: str, payload: dict) -> None:
    kind = payload.get("type")
    if kind == "cancel":
        job = payload.get("job")
        if isinstance(job, str) and JOB_ID.fullmatch(job):
            _apply_served(edge, JobCancelled(sender, job))
        return
    if kind != "chat":
        return
    chat = read_chat_job(payload, sender, edge.parse_request)
    if chat is None:
        return
    engine = edge.current_engine()
    decline = accept_chat_job(_read_load(engine, edge.node_id), chat.cost, chat.expect_start_s)
    _apply_served(edge, JobOffered(sender, chat.job, chat.request, chat.refusal, decline))


def _handle(edge: _Edge, kind: str, sender: str, payload: dict) -> None:
    if kind == "job":
        _take_job(edge, sender, payload)
        return
    job = payload.get("job")
    with edge.lock:
        inbox = edge.inboxes.get(job) if isinstance(job, str) else None
    if inbox is not None and inbox[0] == sender:  # a result for one of our chats, from the unit running it
        inbox[1].put(payload)


# --- chats sent from here ------------------------------------------------------------------------------


def _cost(engine: Engine, request: ChatRequest) -> ChatCost:
    chars = sum(len(message.get("content", "")) for message in request.messages)
    reply = request.params.max_tokens or TYPICAL_REPLY_TOKENS
    return ChatCost(model=engine.model_id, prompt_tokens=chars // _CHARS_PER_TOKEN + 1, reply_tokens=reply)


def _continue_here(engine: Engine, request: ChatRequest, effect: RunElsewhere, cancel: CancelSignal) -> ChatStream:
    if effect.reply_prefix or effect.started:
        _log.info("continuing a chat here: %s", effect.reason)
    else:
        _log.info("running a chat here after all: %s", effect.reason)
    continued = dataclasses.replace(request, reply_prefix=effect.reply_prefix)
    for event in engine.stream_chat(continued, cancel):
        if event.kind == "start" and effect.started:
            continue  # the client has its start: the reply goes on
        yield event


def _name_unit(event: ChatEvent, agent: MeshAgent, node: str) -> ChatEvent:
    # The client is told which unit answers (its name on the Wi-Fi, as the peer's presence gives it).
    if event.kind != "start":
        return event
    entry = agent.peers().get(node)
    return dataclasses.replace(event, unit=(entry.presence.name if entry is not None else "") or node)


def _follow_remote(
    edge: _Edge,
    agent: MeshAgent,
    engine: Engine,
    request: ChatRequest,
    cancel: CancelSignal,
    placed: tuple[str, str, queue.Queue[dict], ChatCost, float],
):
    job, node, inbox, cost, expect_s = placed
    max_text = max(MAX_RESULT_TEXT, (request.params.max_tokens or engine.n_ctx) * MAX_CHARS_PER_TOKEN)
    chat = RemoteChat(job=job, node=node, phase="asked", heard_at=time.monotonic(), max_text=max_text)
    client = hmac.new(edge.salt, request.client_key.encode("utf-8"), hashlib.sha256).hexdigest()[:16]
    payload = encode_chat_job(job, cost, dataclasses.replace(request, client_key=client), expect_s)
    try:
        if not agent.send_work("job", node, payload):
            chat = dataclasses.replace(chat, phase="failed")
            yield from engine.stream_chat(request, cancel)
            return
        _log.info("chat %s sent to %s (it should start there in %.1f s)", job, node, expect_s)
        while chat.phase not in ("finished", "failed"):
            if cancel.is_set():
                event: object = ClientLeft(time.monotonic())
            else:
                try:
                    event = ResultArrived(inbox.get(timeout=_POLL_S), time.monotonic())
                except queue.Empty:
                    peer = agent.peers().get(node)
                    lost = peer is None or peer.state != "online"
                    event = PeerLost(time.monotonic()) if lost else RemoteTicked(time.monotonic())
            chat, effects = apply_remote_chat_event(chat, event)  # type: ignore[arg-type]
            for effect in effects:
                if isinstance(effect, Deliver):
                    yield _name_unit(effect.event, agent, node)
                elif isinstance(effect, CancelOnPeer):
                    agent.send_work("job", effect.node, {"type": "cancel", "job": effect.job})
                elif isinstance(effect, RunElsewhere):
                    yield from _continue_here(engine, request, effect, cancel)
    finally:
        with edge.lock:
            edge.inboxes.pop(job, None)
        # Closed early (the HTTP server saw the client go while writing to it): the peer stops too.
        if chat.phase not in ("finished", "failed"):
            agent.send_work("job", node, {"type": "cancel", "job": job})


def _run_here(edge: _Edge, engine: Engine, request: ChatRequest, cancel: CancelSignal) -> ChatStream:
    pending = True
    try:
        for event in engine.stream_chat(request, cancel):
            if pending:  # started (or refused): the engine's own figures count it from now on
                with edge.lock:
                    edge.pending_here -= 1
                pending = False
            yield event
    finally:
        if pending:
            with edge.lock:
                edge.pending_here -= 1


def _place(
    edge: _Edge, agent: MeshAgent, engine: Engine, cost: ChatCost
) -> tuple[str, str, queue.Queue[dict], ChatCost, float] | None:
    """Where the chat runs, registered at once: None (here, counted in pending_here) or (job, node, its inbox,
    cost, the wait counted on there)."""
    with edge.placing:
        peers = agent.peers()
        local = _read_load(engine, edge.node_id)
        with edge.lock:
            sent_at = [(node, at) for node, _, at in edge.inboxes.values()]
            # Placed here and not started: in the engine's queue already, or about to be.
            local = dataclasses.replace(local, queued=max(local.queued, edge.pending_here))
        sent: dict[str, int] = {}
        for node, at in sent_at:  # chats sent to a peer since its last presence are not in its figures yet
            if node in peers and at > peers[node].last_seen:
                sent[node] = sent.get(node, 0) + 1
        placement = choose_chat_unit(local, peers, cost, now=time.time(), rng=edge.rng, sent=sent)
        with edge.lock:
            if placement.node is None:
                edge.pending_here += 1
                return None
            there = next(estimate for estimate in placement.estimates if estimate.node == placement.node)
            job, inbox = secrets.token_hex(8), queue.Queue[dict]()
            edge.inboxes[job] = (placement.node, inbox, time.time())
            return job, placement.node, inbox, cost, there.start_s - FORWARD_OVERHEAD_S


def _stream_chat(edge: _Edge, request: ChatRequest, cancel: CancelSignal) -> ChatStream:
    engine = edge.current_engine()
    agent = edge.find_agent()
    # A continued reply stays here: it was handed back once already.
    if agent is None or request.reply_prefix:
        yield from engine.stream_chat(request, cancel)
        return
    placed = _place(edge, agent, engine, _cost(engine, request))
    if placed is None:
        yield from _run_here(edge, engine, request, cancel)
    else:
        yield from _follow_remote(edge, agent, engine, request, cancel, placed)


def _count_workers(edge: _Edge) -> int:
    engine = edge.current_engine()
    here = max(1, count_ready_slots(_read_load(engine, edge.node_id)))
    agent = edge.find_agent()
    if agent is None:
        return here
    now = time.time()
    able = [entry for entry in agent.peers().values() if can_take_chats(entry, engine.model_id, now)]
    return here + sum(count_ready_slots(entry.presence.load) for entry in able)


def _stop(edge: _Edge) -> None:
    with edge.lock:
        cancels = list(edge.cancels.values())
    for cancel in cancels:
        cancel.set()


def start_chat_work(
    *,
    node_id: str,
    current_engine: Callable[[], Engine],
    find_agent: Callable[[], MeshAgent | None],
    parse_request: Callable[[dict], ChatRequest],
    rng: random.Random | None = None,
) -> ChatWork:
    """The work service of a unit: give its handle to the mesh agent (on_work) and route chats through its
    stream_chat. find_agent(): the running agent, None while the unit is in no mesh (chats then run here).
    parse_request(body): a peer's OpenAI body checked as a phone's, ValueError with the reason."""
    edge = _Edge(
        node_id=node_id,
        current_engine=current_engine,
        find_agent=find_agent,
        parse_request=parse_request,
        rng=rng or random.Random(),
    )
    return ChatWork(
        handle=lambda kind, sender, payload: _handle(edge, kind, sender, payload),
        stream_chat=lambda request, cancel: _stream_chat(edge, request, cancel),
        stop=lambda: _stop(edge),
        count_workers=lambda: _count_workers(edge),
    )
