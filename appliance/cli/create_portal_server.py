"""Create the portal's HTTP server: waitress, with limits set for hostile phones, and a deadline per request."""

from __future__ import annotations

import json
import time

from flask import Flask
from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.server import MultiSocketServer, TcpWSGIServer
from waitress.task import ErrorTask, ThreadedTaskDispatcher
from waitress.utilities import BadRequest, ServerNotImplemented

from appliance.cli.portal_server_types import PortalServerLimits

_DEFAULT_LIMITS = PortalServerLimits()
_RECV_BYTES = 8192  # waitress's read size (its default), named because the body buffer's size depends on it


class _TimedRequestParser(HTTPRequestParser):
    # A request being received, stamped when its first byte arrived (waitress makes one per request).
    def __init__(self, adj):
        super().__init__(adj)
        self.started = time.monotonic()


class _JsonErrorTask(ErrorTask):
    """The server's own refusals (413, 431, 400) in the API's JSON error shape, as the app's are."""

    def execute(self):
        error = self.request.error
        if isinstance(error, ServerNotImplemented):
            # waitress says 501 for a Transfer-Encoding it cannot decode; a request whose last coding is not
            # chunked has no knowable length, which RFC 9112 (6.3) makes a 400. Either way the client erred.
            error = BadRequest(error.body)
        status, _, _ = error.to_response(self.channel.server.adj.ident)
        body = json.dumps(
            {
                "error": {
                    "message": f"{error.reason}: {error.body}",
                    "type": "invalid_request_error",
                    "code": error.reason.lower().replace(" ", "_"),
                }
            }
        ).encode("utf-8")
        self.status = status
        self.response_headers.append(("Content-Type", "application/json"))
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


class _PortalChannel(HTTPChannel):
    parser_class = _TimedRequestParser
    error_task_class = _JsonErrorTask


class _PortalServer(TcpWSGIServer):
    """waitress closes idle connections only: one that sends a byte every few seconds stays forever. This
    server also closes a connection whose request has not arrived in full by the deadline."""

    channel_class = _PortalChannel
    request_deadline_s: int = PortalServerLimits.request_deadline_s

    def maintenance(self, now):
        super().maintenance(now)
        cutoff = time.monotonic() - self.request_deadline_s
        for channel in list(self.active_channels.values()):
            request = channel.request
            if request is not None and not request.completed and request.started < cutoff:
                channel.will_close = True  # closed without an answer: the phone was not sending one


def _check_limits(limits: PortalServerLimits) -> None:
    for name, value in vars(limits).items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"server limit {name} must be a positive whole number, not {value!r}")


def create_portal_server(
    app: Flask, *, host: str, port: int, threads: int, limits: PortalServerLimits = _DEFAULT_LIMITS
):
    """A waitress server for `app` on host:port (not yet running: call .run(), stop with .close()).

    Bodies over the app's MAX_CONTENT_LENGTH plus limits.body_slack_bytes are refused (413) from their
    Content-Length, or for a chunked body as soon as it passes the limit; a body within it stays in memory,
    so what a phone sends never reaches a temporary file on the unit's storage. Headers over
    limits.max_header_bytes get 431. A request not in full within limits.request_deadline_s of its first
    byte, and a connection idle for limits.idle_timeout_s, are closed. Raises OSError when it cannot listen.
    """
    _check_limits(limits)
    max_body = int(app.config["MAX_CONTENT_LENGTH"]) + limits.body_slack_bytes
    adj = Adjustments(
        host=host,
        port=port,
        threads=threads,
        ident="iplm",
        # Lets waitress notice a phone that hung up while its prompt is evaluated.
        channel_request_lookahead=1,
        max_request_body_size=max_body,
        # The body buffer moves to a temporary file past this size; waitress refuses a body once it reaches
        # max_body, after at most one more read, so no accepted or refused body ever gets there.
        recv_bytes=_RECV_BYTES,
        inbuf_overflow=max_body + _RECV_BYTES,
        max_request_header_size=limits.max_header_bytes,
        channel_timeout=limits.idle_timeout_s,
        cleanup_interval=limits.check_every_s,
        connection_limit=limits.connection_limit,
        backlog=limits.backlog,
        # poll, not select: select fails outright on a descriptor numbered 1024 or more.
        asyncore_use_poll=True,
        # Answers (outbuf_*) keep waitress's defaults: the largest are a peer's piece ranges, which must stream.
    )
    dispatcher = ThreadedTaskDispatcher()
    dispatcher.set_thread_count(adj.threads)
    socket_map: dict = {}
    servers = [
        _PortalServer(app, socket_map, dispatcher=dispatcher, adj=adj, sockinfo=sockinfo) for sockinfo in adj.listen
    ]
    for server in servers:
        server.request_deadline_s = limits.request_deadline_s
    if len(servers) == 1:
        return servers[0]
    # A host name with several addresses (as waitress's create_server does it).
    return MultiSocketServer(
        socket_map, adj, [(server.effective_host, server.effective_port) for server in servers], dispatcher
    )
