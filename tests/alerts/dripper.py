"""A webhook receiver on loopback that reads the whole request, then answers ONE BYTE every
`every_s` seconds: each read of its client gets a byte well within any per-read timeout, so only
a total deadline ends the attempt. `fast = True` makes it answer at once (for the retry)."""
from __future__ import annotations

import socket
import threading
import time

HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"


class Dripper:
    def __init__(self, every_s: float = 2.0, *, drip_body: bool = False, body_size: int = 64):
        self.every_s, self.drip_body, self.body = every_s, drip_body, b"k" * body_size
        self.fast = False
        self.accepted: list[float] = []  # monotonic time of each connection
        self.requests: list[bytes] = []
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> Dripper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._listener.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted.append(time.monotonic())
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _read_request(self, conn: socket.socket) -> bytes:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return data
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), 0)
        while len(body) < length:
            chunk = conn.recv(65536)
            if not chunk:
                break
            body += chunk
        return head + b"\r\n\r\n" + body

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(30)
            try:
                self.requests.append(self._read_request(conn))
                answer = HEAD % len(self.body) + self.body
                if self.fast:
                    conn.sendall(answer)
                    return
                start = len(HEAD % len(self.body)) if self.drip_body else 0
                conn.sendall(answer[:start])
                for i in range(start, len(answer)):
                    conn.sendall(answer[i:i + 1])
                    if self._stop.wait(self.every_s):
                        return
            except OSError:
                return  # the client gave up (its deadline): what the test expects
