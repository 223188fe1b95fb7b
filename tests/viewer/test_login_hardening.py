"""Login and form hardening (viewer side): form bodies capped before reading, argon2 off the event
loop with a bound, per-address limit with a growing per-account delay (no lock-out anyone can
trigger), FLUSSO_COOKIE_SECURE=auto."""
import asyncio
import socket
import threading
import time

import httpx
import pytest

from config.server import ServerSettings
from tests.helpers import LiveServer
from viewer.auth import FailureDelay, PasswordVerifier, VerifierBusy, hash_password

from .helpers import PASSWORD


def _server(dsn, **overrides) -> LiveServer:
    settings = ServerSettings(_env_file=None, flusso_session_secret="h" * 40, **overrides)
    return LiveServer(dsn, settings).start()


def _login(client: httpx.Client, email: str, password: str = PASSWORD, **headers) -> httpx.Response:
    page = client.get("/login", headers=headers)
    token = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    return client.post("/login", headers=headers, data={"email": email, "password": password,
                                                         "csrf_token": token, "next": "/"})


def test_a_5mb_login_post_is_413_before_the_body_is_read(loaded_db):
    dsn, _, _ = loaded_db
    server = _server(dsn)
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            sock.sendall(b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                         b"Content-Length: 5000000\r\n\r\nemail=a")  # 7 of 5,000,000 bytes, then nothing
            answer = sock.recv(4096)  # a server that reads the body first would wait here: timeout
        assert answer.split(b" ", 2)[1] == b"413", answer[:200]
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            sock.sendall(b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                         b"Transfer-Encoding: chunked\r\n\r\n5\r\nemail\r\n")
            assert sock.recv(4096).split(b" ", 2)[1] == b"411"
    finally:
        server.stop()


def test_password_checks_leave_the_event_loop_free(loaded_db):
    """Six sign-ins at once (argon2, ~64 MiB and tens to hundreds of ms each): /healthz on the same
    loop keeps answering fast. With argon2 on the loop it waited for every check in turn."""
    dsn, _, _ = loaded_db
    server = _server(dsn, flusso_login_attempts_per_minute=100, flusso_login_checks_per_second=100)  # unpaced
    latencies, done = [], threading.Event()

    def probe():
        with httpx.Client(base_url=server.url, timeout=30) as client:
            while not done.is_set():
                started = time.perf_counter()
                client.get("/healthz")
                latencies.append(time.perf_counter() - started)
                time.sleep(0.01)

    def one_login(i: int):
        with httpx.Client(base_url=server.url, timeout=60) as client:
            _login(client, "provider@example.com", "wrong-password")

    try:
        started = time.perf_counter()
        with httpx.Client(base_url=server.url, timeout=60) as client:
            _login(client, "nobody@example.com", "x")
        one_check = time.perf_counter() - started
        prober = threading.Thread(target=probe)
        prober.start()
        logins = [threading.Thread(target=one_login, args=(i,)) for i in range(6)]
        for t in logins:
            t.start()
        for t in logins:
            t.join()
        done.set()
        prober.join()
    finally:
        server.stop()
    assert len(latencies) > 5
    assert max(latencies) < max(0.25, one_check), (max(latencies), one_check)


def test_verifier_bounds_concurrency_and_queue():
    slow_hash = hash_password("pw")

    async def run():
        verifier = PasswordVerifier(1, max_waiting=3)
        results = await asyncio.gather(*(verifier.verify(slow_hash, "pw") for _ in range(5)), return_exceptions=True)
        return results, verifier.waiting

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:  # its own thread: the browser tests keep a loop running in this one
        results, waiting = pool.submit(asyncio.run, run()).result()
    assert results.count(True) == 3 and sum(isinstance(r, VerifierBusy) for r in results) == 2
    assert waiting == 0


def test_verifier_paces_checks_per_second():
    """Checks start at most `checks_per_second` times a second, whatever the concurrency: a flood
    cannot take more CPU than that from ingest. Six cheap checks at 5/s need >= 1 s; unpaced
    (before) they took a few ms."""
    from argon2 import PasswordHasher

    cheap = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash("pw")

    async def run():
        verifier = PasswordVerifier(2, checks_per_second=5)
        started = time.perf_counter()
        results = await asyncio.gather(*(verifier.verify(cheap, "pw") for _ in range(6)))
        return results, time.perf_counter() - started

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:  # its own thread: the browser tests keep a loop running in this one
        results, elapsed = pool.submit(asyncio.run, run()).result()
    assert results == [True] * 6
    assert 0.95 <= elapsed < 10, elapsed


def test_login_flood_gets_503_with_retry_after(loaded_db):
    """Sign-ins beyond the paced queue get 503 + Retry-After at once; the admitted ones are checked
    one per 1/rate seconds."""
    dsn, _, _ = loaded_db
    server = _server(dsn, flusso_login_attempts_per_minute=1000, flusso_login_checks_per_second=0.5)
    server.server.config.app.state.viewer.verifier.max_waiting = 2
    try:
        clients = [httpx.Client(base_url=server.url, timeout=30) for _ in range(5)]
        tokens = []
        for client in clients:
            page = client.get("/login")
            tokens.append(page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0])
        answers: list[tuple[int, str | None, float]] = []

        def post(client: httpx.Client, token: str) -> None:
            started = time.perf_counter()
            r = client.post("/login", data={"email": "nobody@example.com", "password": "x",
                                            "csrf_token": token, "next": "/"})
            answers.append((r.status_code, r.headers.get("retry-after"), time.perf_counter() - started))
            assert r.status_code != 503 or "Too many sign-ins at once" in r.text

        threads = [threading.Thread(target=post, args=pair) for pair in zip(clients, tokens, strict=True)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        statuses = sorted(status for status, _, _ in answers)
        assert statuses == [401, 401, 503, 503, 503], answers
        assert all(retry == "4" for status, retry, _ in answers if status == 503), answers  # 2 waiting x 2 s
        assert max(took for status, _, took in answers if status == 401) >= 1.9, answers  # the second waited its turn
        for client in clients:
            client.close()
    finally:
        server.stop()


def test_failure_delay_grows_per_account_and_is_forgotten_on_success():
    delay = FailureDelay(free_failures=3, base_s=0.5, max_s=4)
    for _ in range(3):
        assert delay.delay_s("a@x") == 0
        delay.failed("a@x")
    observed = []
    for _ in range(5):
        observed.append(delay.delay_s("a@x"))
        delay.failed("a@x")
    assert observed == [0.5, 1, 2, 4, 4]
    assert delay.delay_s("b@x") == 0  # per account
    delay.succeeded("a@x")
    assert delay.delay_s("a@x") == 0


def test_an_attacker_cannot_lock_a_user_out(loaded_db):
    """Failed attempts from one address hit that address's limit; the victim, from another address,
    still signs in (after a bounded delay). Before: a per-email hard limit locked the victim out."""
    dsn, _, _ = loaded_db
    server = _server(dsn, flusso_login_attempts_per_minute=5, flusso_login_delay_max_seconds=0.3)
    try:
        with httpx.Client(base_url=server.url, timeout=60) as attacker:
            codes = [_login(attacker, "provider@example.com", f"guess-{i}", **{"X-Forwarded-For": "203.0.113.9"}
                            ).status_code for i in range(7)]
        assert codes == [401] * 5 + [429] * 2
        with httpx.Client(base_url=server.url, timeout=60) as victim:
            started = time.perf_counter()
            r = _login(victim, "provider@example.com", **{"X-Forwarded-For": "198.51.100.7"})
            assert r.status_code == 303, r.text[:300]
            assert time.perf_counter() - started >= 0.3  # the account's delay applied, capped
    finally:
        server.stop()


@pytest.mark.parametrize("proto, secure", [("https", True), ("http", False)])
def test_cookie_secure_auto_follows_the_trusted_proxy_scheme(loaded_db, proto, secure):
    dsn, _, _ = loaded_db
    server = _server(dsn)  # FLUSSO_COOKIE_SECURE defaults to auto; uvicorn trusts 127.0.0.1's X-Forwarded-*
    try:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            page = client.get("/login", headers={"X-Forwarded-Proto": proto})
        assert ("Secure" in page.headers["set-cookie"]) is secure  # the login form's CSRF cookie
    finally:
        server.stop()


def test_a_nul_in_a_filter_is_400_not_500(app_client):
    """Found by the long schemathesis run: PostgreSQL text cannot hold NUL; it used to answer 500."""
    from .helpers import login

    login(app_client, "provider@example.com")
    for path in ("/api/v1/tickets?ticket=a%00b", "/api/v1/stats?client=%00", "/api/v1/tickets/export.csv?version=%00"):
        r = app_client.get(path)
        assert r.status_code == 400 and "NUL" in r.json()["detail"], (path, r.text[:200])
    assert app_client.get("/tickets?ticket=%00").status_code == 400


def test_a_four_lane_hash_is_replaced_by_a_one_lane_hash_at_sign_in(loaded_db):
    """Hashes of earlier versions (argon2's default 4 lanes: one check on 4 threads, both cores) are
    re-hashed with one lane when their owner signs in; the password still works after that, and a
    wrong password never triggers it."""
    import psycopg
    from argon2 import PasswordHasher

    dsn, _, _ = loaded_db
    old = PasswordHasher(parallelism=4).hash(PASSWORD)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("UPDATE users SET password_hash = %s WHERE email = 'provider@example.com'", (old,))
    server = _server(dsn)
    try:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            assert _login(client, "provider@example.com", "wrong").status_code == 401
            assert _stored_hash(dsn) == old
            assert _login(client, "provider@example.com").status_code == 303
        new = _stored_hash(dsn)
        assert new != old and ",p=1$" in new, new
        with httpx.Client(base_url=server.url, timeout=60) as client:
            assert _login(client, "provider@example.com").status_code == 303
    finally:
        server.stop()


def _stored_hash(dsn: str) -> str:
    import psycopg

    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT password_hash FROM users WHERE email = 'provider@example.com'").fetchone()[0]
