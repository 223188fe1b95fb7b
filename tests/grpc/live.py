"""A live collector with its OTLP/gRPC port: uvicorn in a thread, the gRPC server in its event loop.

Mirrors tests.conftest.LiveServer (HTTP only) with `create_app(..., grpc_port=...)`, as `serve` runs it.
"""
from __future__ import annotations

import socket
import threading
import time

import uvicorn

from config.server import ServerSettings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class GrpcLiveServer:
    def __init__(self, dsn: str, settings: ServerSettings | None = None, *, port: int | None = None,
                 grpc_port: int | None = None):
        from flusso_obs.server import create_app

        self.settings = settings or ServerSettings(_env_file=None, flusso_session_secret="grpc-test-" + "x" * 32)
        self.port, self.grpc_port = port or free_port(), grpc_port or free_port()
        self.url, self.target, self.dsn = f"http://127.0.0.1:{self.port}", f"127.0.0.1:{self.grpc_port}", dsn
        self.app = create_app(self.settings, dsn, grpc_port=self.grpc_port)
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> GrpcLiveServer:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("live server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
