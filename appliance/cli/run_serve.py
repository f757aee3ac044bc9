"""`iplm serve`: the portal and the engine workers, until SIGINT/SIGTERM."""
from __future__ import annotations

import dataclasses
import logging
import signal
import sys

from waitress.server import create_server

from appliance.cli.apply_overrides import apply_overrides
from appliance.engine.choose_engine_spec import choose_engine_spec
from appliance.engine.engine_types import EngineError
from appliance.engine.probe_device import probe_device
from appliance.engine.recommend_settings import recommend_settings
from appliance.engine.start_engine_pool import start_engine_pool
from appliance.portal.create_app import create_app
from appliance.portal.portal_types import ChatDefaults, UnitInfo
from appliance.store.load_node_id import load_node_id
from appliance.store.open_database import open_database
from appliance.store.resolve_data_dir import resolve_data_dir

_log = logging.getLogger("iplm")
# Each streaming chat holds a server thread; page loads and /healthz need their own.
_SERVER_THREADS = 48


def run_serve(args) -> int:
    """Start everything, serve HTTP, shut the engine down cleanly on a signal."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    data_dir = resolve_data_dir(args.data_dir)
    open_database(data_dir)
    node_id = load_node_id(data_dir)
    profile = probe_device()
    recommendation = apply_overrides(recommend_settings(profile), args)
    try:
        spec = choose_engine_spec(recommendation, model_path=args.model, model_lib=args.model_lib)
        _log.info("starting %d %s worker(s): %s", recommendation.workers, recommendation.engine, recommendation.reason)
        engine = start_engine_pool(spec, workers=recommendation.workers, hang_timeout=args.hang_timeout)
    except EngineError as exc:
        print(f"iplm: cannot start the engine: {exc.message}", file=sys.stderr)
        return 2
    defaults = ChatDefaults(
        max_tokens=min(recommendation.max_tokens, engine.n_ctx),
        temperature=args.temperature if args.temperature is not None else ChatDefaults.temperature,
    )
    unit = UnitInfo(node_id=node_id, name=f"iplm-{node_id[-4:]}", defaults=defaults,
                    device=dataclasses.asdict(profile))
    app = create_app(engine, unit)
    try:
        # channel_request_lookahead lets waitress notice a phone that hung up while its prompt is evaluated.
        server = create_server(app, host=args.host, port=args.port, threads=_SERVER_THREADS,
                               channel_request_lookahead=1, ident="iplm")
    except OSError as exc:
        engine.close()
        print(f"iplm: cannot listen on {args.host}:{args.port}: {exc.strerror}", file=sys.stderr)
        return 2

    def stop(signum, frame):
        server.close()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"iplm {unit.name}: {engine.model_id} on {engine.kind}; data in {data_dir}", flush=True)
    print(f"iplm: serving on http://{args.host}:{server.effective_port}/", flush=True)
    try:
        server.run()
    except (OSError, ValueError):
        pass  # the signal handler closed the listening socket under the loop
    finally:
        engine.close()
    return 0
