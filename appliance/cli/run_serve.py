"""`iplm serve`: the portal and the engine workers, until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path

import peewee

from appliance.admin.admin_types import DEFAULT_MODEL_SETTING, AdminHooks
from appliance.admin.ensure_admin_pin import ensure_admin_pin
from appliance.admin.start_install_jobs import start_install_jobs
from appliance.cli.apply_overrides import apply_overrides
from appliance.cli.create_portal_server import create_portal_server
from appliance.engine.choose_engine_spec import choose_engine_spec
from appliance.engine.device_profile import Recommendation
from appliance.engine.engine_types import ChatRequest, Engine, EngineError, StreamChat
from appliance.engine.list_runnable_engines import list_runnable_engines
from appliance.engine.pool.pool_types import PoolLimits
from appliance.engine.pool.start_engine_pool import start_engine_pool
from appliance.engine.probe_device import probe_device
from appliance.engine.recommend_settings import recommend_settings
from appliance.library.library_errors import LibraryError
from appliance.library.locate_installed_model import locate_installed_model
from appliance.mesh.agent.describe_unit_presence import describe_unit_presence
from appliance.mesh.agent.find_model_holders import find_model_holders
from appliance.mesh.agent.mesh_agent_types import UnitMesh
from appliance.mesh.agent.start_unit_mesh import start_unit_mesh
from appliance.mesh.discovery.choose_ble_adapter import choose_ble_adapter
from appliance.mesh.key.load_mesh_secrets import load_mesh_secrets
from appliance.mesh.mesh_errors import BrokerError
from appliance.mesh.work.start_chat_work import start_chat_work
from appliance.mesh.work.work_types import ChatWork
from appliance.network.network_types import DEFAULT_AP_SUBNET
from appliance.portal.create_app import create_app
from appliance.portal.parse_chat_request import parse_chat_request
from appliance.portal.portal_types import ApiError, ChatDefaults, UnitInfo
from appliance.split.ask_model_for_json import ask_model_for_json
from appliance.split.start_split_chats import start_split_chats
from appliance.store.load_node_id import load_node_id
from appliance.store.open_database import open_database
from appliance.store.prune_conversations import prune_conversations
from appliance.store.read_setting import read_setting
from appliance.store.read_store_limits import read_store_limits
from appliance.store.resolve_data_dir import resolve_data_dir
from appliance.store.write_setting import write_setting
from appliance.thinking.start_thinking_chats import start_thinking_chats

_log = logging.getLogger("iplm")
# Each streaming chat holds a server thread, running or queued (more are refused at once by the pool's limits);
# page loads, /healthz, probes and peers' piece requests keep at least this many of their own.
_SERVER_THREADS_BESIDE_CHATS = 40
_MIN_SERVER_THREADS = 48
_PRUNE_EVERY_S = 600.0


def _choose_model_path(args, data_dir) -> tuple[str | None, str | None]:
    """(model path, model id) to start with: --model, else the admin's default model, else the probe's."""
    if args.model:
        return args.model, None
    chosen = read_setting(DEFAULT_MODEL_SETTING)
    if not chosen:
        return None, None
    try:
        return str(locate_installed_model(data_dir, chosen)), chosen
    except LibraryError as exc:
        _log.warning("the default model %s cannot be used (%s); using the recommended one", chosen, exc.message)
        return None, None


def _start_mesh(args, data_dir, node_id: str, name: str, board: str, current_engine, work: ChatWork):
    """The unit's broker and mesh agent, when it has a mesh key and a mesh address; else None."""
    if not args.mesh_address:
        return None

    def describe_unit() -> dict:
        engine = current_engine()
        return describe_unit_presence(
            node_id, name=name, engine=engine.kind, device_class=board, load=engine.describe_status()
        )

    # Chosen when the mesh starts, not at boot: a board's UART-attached radio may show up late.
    ble_adapter = choose_ble_adapter(args.ble_adapter)
    if ble_adapter is None and args.ble_adapter == "auto":
        _log.info("no Bluetooth adapter: the mesh goes without BLE discovery")
    mesh = start_unit_mesh(
        data_dir=data_dir,
        node_id=node_id,
        mesh_address=args.mesh_address,
        portal_port=args.port,
        broker_port=args.mesh_port,
        run_broker=not args.no_mesh_broker,
        describe_unit=describe_unit,
        ble_adapter=ble_adapter,
        on_work=work.handle,
    )
    if mesh is None:
        _log.warning("--mesh-address given but this unit has no mesh key: `iplm mesh create` or `iplm mesh join`")
    return mesh


def _parse_peer_request(engine: Engine, body: dict) -> ChatRequest:
    """A peer's chat job checked exactly as a phone's request to this unit's model (ValueError: why not)."""
    try:
        parsed = parse_chat_request(body, models=(engine.model_id,), n_ctx=engine.n_ctx)
    except ApiError as exc:
        raise ValueError(exc.message) from None
    return ChatRequest(messages=parsed.messages, params=parsed.params)


def _route_chats(engine: Engine, stream_chat: StreamChat) -> Engine:
    """The engine as the portal sees it: the same model and status; a chat that asks to think does so
    first, prompts that suit it are cut into pieces run in parallel, and each chat, piece or model call
    runs where it finishes soonest."""
    return dataclasses.replace(engine, stream_chat=stream_chat)


def _start_splitting(running: _Running, work: ChatWork, planner: str) -> StreamChat:
    """The chats' way in: the splitter in front of the work service (planner "off": the work service)."""
    if planner == "off":
        return work.stream_chat
    ask = (lambda prompt, schema: ask_model_for_json(running.engine, prompt, schema)) if planner == "model" else None
    return start_split_chats(
        run_chat=work.stream_chat,
        width=work.count_workers,
        context_tokens=lambda: running.engine.n_ctx,
        ask_model=ask,
    ).stream_chat


def _use_mesh_key(running: _Running, start_mesh: Callable[[], UnitMesh | None]) -> None:
    """The admin stored a mesh key: stop the running mesh (if any) and start it again on the stored key, in
    a thread of its own (the agent takes seconds to reach its broker; the admin's answer does not wait)."""

    def restart() -> None:
        with running.meshing:
            old, running.mesh = running.mesh, None
            if old is not None:
                old.stop()
            try:
                running.mesh = start_mesh()
            except BrokerError as exc:
                _log.error("cannot start the mesh broker: %s", exc.message)
            except Exception:  # the portal stays up without a mesh; the owner sees it on the admin page
                _log.exception("starting the mesh failed")

    threading.Thread(target=restart, name="iplm-mesh-start", daemon=True).start()


def _close_when_idle(engine, patience: float = 300.0) -> None:
    # Chats already streaming on the old model finish on it; new ones go to the new model.
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline:
        status = engine.describe_status()
        if not status.get("busy") and not status.get("queued"):
            break
        time.sleep(0.5)
    engine.close()


@dataclass(frozen=True)
class _EngineRecipe:
    """How this unit opens an engine for a model: the probe's recommendation and the command line."""

    args: argparse.Namespace
    data_dir: Path
    recommendation: Recommendation


@dataclass(eq=False)
class _Running:
    """What the running unit swaps while it serves: the engine (an admin may switch models) and the mesh
    (started after the app: installs look it up when they start)."""

    recipe: _EngineRecipe
    engine: Engine
    mesh: UnitMesh | None = None
    switching: threading.Lock = field(default_factory=threading.Lock)
    meshing: threading.Lock = field(default_factory=threading.Lock)  # one mesh (re)start at a time


def _open_engine(recipe: _EngineRecipe, model_path: str | None, model_id: str | None) -> Engine:
    spec = choose_engine_spec(
        recipe.recommendation,
        model_path=model_path,
        model_lib=recipe.args.model_lib,
        model_id=model_id,
        data_dir=str(recipe.data_dir),
    )
    limits = PoolLimits(chats_per_client=recipe.args.chats_per_device, max_queued=recipe.args.max_queued_chats)
    return start_engine_pool(
        spec, workers=recipe.recommendation.workers, hang_timeout=recipe.args.hang_timeout, limits=limits
    )


def _switch_model(running: _Running, model_id: str) -> None:
    with running.switching:
        old = running.engine
        if old.model_id == model_id:
            write_setting(DEFAULT_MODEL_SETTING, model_id)
            return
        new = _open_engine(running.recipe, str(locate_installed_model(running.recipe.data_dir, model_id)), model_id)
        running.engine = new
        write_setting(DEFAULT_MODEL_SETTING, model_id)
    _log.info("now serving %s on %s", new.model_id, new.kind)
    threading.Thread(target=_close_when_idle, args=(old,), daemon=True).start()


def _find_peers(running: _Running, model_id: str) -> list[str]:
    return find_model_holders(running.mesh.agent.peers(), model_id) if running.mesh is not None else []


def _read_mesh_peers(running: _Running) -> dict | None:
    return running.mesh.agent.peers() if running.mesh is not None else None  # None: no mesh (yet)


def _build_unit_info(node_id: str, profile, recommendation: Recommendation, engine: Engine, args) -> UnitInfo:
    defaults = ChatDefaults(
        max_tokens=min(recommendation.max_tokens, engine.n_ctx),
        temperature=args.temperature if args.temperature is not None else ChatDefaults.temperature,
    )
    return UnitInfo(node_id=node_id, name=f"iplm-{node_id[-4:]}", defaults=defaults, device=dataclasses.asdict(profile))


def _announce(unit: UnitInfo, engine: Engine, data_dir: Path, args, port: int) -> None:
    pin = ensure_admin_pin()
    if pin:
        print(
            f"iplm: the admin PIN is {pin} (shown once; change it on the admin page, or reset it with "
            f"`iplm admin reset-pin`)",
            flush=True,
        )
    print(f"iplm {unit.name}: {engine.model_id} on {engine.kind}; data in {data_dir}", flush=True)
    print(f"iplm: serving on http://{args.host}:{port}/ (admin: /admin)", flush=True)


def _read_phone_networks(args) -> tuple[IPv4Network | IPv6Network, ...]:
    # On a unit (a portal URL given), the access point's subnet is the phones'; in development there is none.
    if args.ap_subnet is not None:
        return (args.ap_subnet,)
    return (ip_network(DEFAULT_AP_SUBNET),) if args.portal_url else ()


def _prune_chats_forever() -> None:
    # Retention and the store's total, now and then every few minutes (a phone's own quota is kept as it
    # writes). A failure is logged and tried again: chats must not stop because pruning did.
    while True:
        try:
            report = prune_conversations(read_store_limits())
            if report.removed:
                _log.info(
                    "removed %d conversations (%d past retention, %d over the store's size)",
                    report.removed,
                    report.expired,
                    report.over_total,
                )
        except peewee.PeeweeException:
            _log.exception("pruning conversations failed")
        time.sleep(_PRUNE_EVERY_S)


def run_serve(args) -> int:
    """Start everything, serve HTTP, shut the engine down cleanly on a signal."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    data_dir = resolve_data_dir(args.data_dir)
    open_database(data_dir)
    node_id = load_node_id(data_dir)
    profile = probe_device()
    recipe = _EngineRecipe(
        args=args, data_dir=data_dir, recommendation=apply_overrides(recommend_settings(profile), args)
    )
    try:
        _log.info(
            "starting %d %s worker(s): %s",
            recipe.recommendation.workers,
            recipe.recommendation.engine,
            recipe.recommendation.reason,
        )
        engine = _open_engine(recipe, *_choose_model_path(args, data_dir))
    except EngineError as exc:
        print(f"iplm: cannot start the engine: {exc.message}", file=sys.stderr)
        return 2
    running = _Running(recipe=recipe, engine=engine)
    work = start_chat_work(
        node_id=node_id,
        current_engine=lambda: running.engine,
        find_agent=lambda: running.mesh.agent if running.mesh is not None else None,
        parse_request=lambda body: _parse_peer_request(running.engine, body),
    )
    # Deep thinking in front of the splitter: its own model calls run whole, through the work service.
    chats = start_thinking_chats(
        run_chat=work.stream_chat,
        next_chat=_start_splitting(running, work, args.split_planner),
        engine_kind=lambda: running.engine.kind,
        width=work.count_workers,
    ).stream_chat
    unit = _build_unit_info(node_id, profile, recipe.recommendation, engine, args)
    jobs = start_install_jobs(
        data_dir,
        node_id,
        find_peers=lambda model_id: _find_peers(running, model_id),
        load_secrets=lambda: load_mesh_secrets(data_dir),
    )
    admin = AdminHooks(
        data_dir=data_dir,
        node_id=node_id,
        memory_bytes=profile.memory_bytes,
        jobs=jobs,
        switch_model=lambda model_id: _switch_model(running, model_id),
        engines=list_runnable_engines(profile),
        phone_networks=_read_phone_networks(args),
        admin_from_phones=args.admin_from_wifi,
        use_mesh_key=lambda: _use_mesh_key(
            running,
            lambda: _start_mesh(args, data_dir, node_id, unit.name, profile.board, lambda: running.engine, work),
        ),
    )
    app = create_app(
        lambda: _route_chats(running.engine, chats),
        unit,
        admin,
        portal_url=args.portal_url,
        mesh_status=lambda: _read_mesh_peers(running),
        peer_clock_offset=lambda node: running.mesh.agent.clock_offset(node) if running.mesh is not None else None,
    )
    try:
        # Body, header, deadline and connection limits against hostile phones: create_portal_server.
        threads = max(
            _MIN_SERVER_THREADS,
            recipe.recommendation.workers * recipe.recommendation.sequences
            + args.max_queued_chats
            + _SERVER_THREADS_BESIDE_CHATS,
        )
        server = create_portal_server(app, host=args.host, port=args.port, threads=threads)
    except OSError as exc:
        engine.close()
        print(f"iplm: cannot listen on {args.host}:{args.port}: {exc.strerror}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda signum, frame: server.close())
    signal.signal(signal.SIGINT, lambda signum, frame: server.close())
    try:
        running.mesh = _start_mesh(args, data_dir, node_id, unit.name, profile.board, lambda: running.engine, work)
    except BrokerError as exc:
        running.engine.close()
        print(f"iplm: cannot start the mesh broker: {exc.message}", file=sys.stderr)
        return 2
    _announce(unit, engine, data_dir, args, server.effective_port)
    threading.Thread(target=_prune_chats_forever, daemon=True).start()
    try:
        server.run()
    except (OSError, ValueError):
        pass  # the signal handler closed the listening socket under the loop
    finally:
        work.stop()
        if running.mesh is not None:
            running.mesh.stop()
        running.engine.close()
    return 0
