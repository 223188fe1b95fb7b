"""The write-ahead spool (FLUSSO_SPOOL_DIR): a client SIGKILLed while the collector is down
loses nothing (the next process sends what is left); records are bound to endpoint + key; one
live process per directory; a corrupt file, a full database or an unusable directory degrade
to memory with one warning and the workflow's logs still arrive."""

import fcntl
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import otel_bridge
from otel_bridge import spool as spool_mod
from tests.helpers import wait_until

from .helpers import send, settings

ROOT = Path(__file__).resolve().parents[2]


def spool_rows(directory):
    with sqlite3.connect(os.path.join(directory, spool_mod.FILE_NAME)) as conn:
        return conn.execute("SELECT count(*) FROM logs").fetchone()[0]


def ids(receiver):
    return sorted(log["ticket_info"]["ticket_id"] for _, log in receiver.records())


CLIENT = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {root!r})
    import otel_bridge
    from tests.bridge.helpers import send, settings
    otel_bridge.configure(settings(spool_dir={spool!r}, spool_fsync_ms=50), endpoint={url!r}, api_key="k-1")
    send("crash", 30)
    print("sent", flush=True)
    time.sleep(60)  # the collector is down; the parent kills us here
""")


def test_a_client_killed_during_an_outage_loses_nothing(tmp_path, receiver):
    spool = str(tmp_path / "spool")
    receiver.behaviour.update(status=503)  # the collector is down (it answers 503)
    code = CLIENT.format(root=str(ROOT), spool=spool, url=receiver.url)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, cwd=str(ROOT))
    try:
        assert proc.stdout.readline().strip() == b"sent"
        # Killed once the spool's writer has committed them (within the 50 ms fsync interval on a
        # quiet machine; later when the cores are busy: the bound is a benchmark's, not this test's).
        assert wait_until(lambda: os.path.exists(os.path.join(spool, spool_mod.FILE_NAME))
                          and spool_rows(spool) == 30, timeout=30, every=0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    assert spool_rows(spool) == 30
    receiver.settle()  # what the killed client had sent is answered (503) before the collector is back
    assert receiver.records() == []
    receiver.behaviour.update(status=200)  # back up; the next process on the directory sends them
    otel_bridge.configure(settings(spool_dir=spool), endpoint=receiver.url, api_key="k-1")
    assert otel_bridge.flush(10.0) is True
    assert ids(receiver) == sorted(f"crash-{i}" for i in range(30))
    assert spool_rows(spool) == 0


def test_rows_of_another_endpoint_or_key_are_left_alone(tmp_path, receiver, refused_url, caplog):
    spool = str(tmp_path / "spool")
    otel_bridge.configure(settings(spool_dir=spool), endpoint=refused_url, api_key="k-old")
    send("old", 3)
    otel_bridge.shutdown(1.0)
    with caplog.at_level(logging.WARNING):
        otel_bridge.configure(settings(spool_dir=spool), endpoint=receiver.url, api_key="k-new")
    assert any("another endpoint or API key" in r.getMessage() for r in caplog.records)
    send("new", 2)
    assert otel_bridge.flush(10.0) is True
    assert ids(receiver) == ["new-0", "new-1"]  # the old key's logs are not sent with the new key
    assert spool_rows(spool) == 3


def test_a_directory_in_use_by_a_live_process_means_memory_with_a_warning(tmp_path, receiver, caplog):
    spool = tmp_path / "spool"
    spool.mkdir()
    fd = os.open(spool / spool_mod.LOCK_NAME, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as another live process would hold it
    try:
        with caplog.at_level(logging.WARNING):
            otel_bridge.configure(settings(spool_dir=str(spool)), endpoint=receiver.url, api_key="k")
        warned = [r.getMessage() for r in caplog.records if "FLUSSO_SPOOL_DIR unusable" in r.getMessage()]
        assert len(warned) == 1 and "another live process" in warned[0]
        send("mem", 2)
        assert otel_bridge.flush(10.0) is True
        assert ids(receiver) == ["mem-0", "mem-1"]
    finally:
        os.close(fd)


def test_a_corrupt_spool_file_degrades_to_memory(tmp_path, receiver, caplog):
    spool = tmp_path / "spool"
    spool.mkdir()
    (spool / spool_mod.FILE_NAME).write_bytes(b"this is not a database" * 500)
    with caplog.at_level(logging.WARNING):
        otel_bridge.configure(settings(spool_dir=str(spool)), endpoint=receiver.url, api_key="k")
    assert len([r for r in caplog.records if "FLUSSO_SPOOL_DIR unusable" in r.getMessage()]) == 1
    send("c", 2)
    assert otel_bridge.flush(10.0) is True
    assert ids(receiver) == ["c-0", "c-1"]


def test_an_unusable_directory_degrades_to_memory(tmp_path, receiver, caplog):
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    with caplog.at_level(logging.WARNING):
        otel_bridge.configure(settings(spool_dir=str(not_a_dir / "spool")), endpoint=receiver.url, api_key="k")
    assert len([r for r in caplog.records if "FLUSSO_SPOOL_DIR unusable" in r.getMessage()]) == 1
    send("u", 1)
    assert otel_bridge.flush(10.0) is True


def test_a_full_spool_database_degrades_to_memory_once_and_delivers(tmp_path, receiver, caplog, monkeypatch):
    real = spool_mod._connect
    monkeypatch.setattr(spool_mod, "_connect", lambda path, max_pages: real(path, 8))  # SQLITE_FULL soon
    spool = str(tmp_path / "spool")
    receiver.behaviour.update(status=503)  # nothing acknowledged: rows pile up until the file is full
    with caplog.at_level(logging.WARNING, logger="otel_bridge.delivery"):
        otel_bridge.configure(settings(spool_dir=spool, spool_fsync_ms=20), endpoint=receiver.url, api_key="k")
        send("f", 20)
        deadline = time.monotonic() + 10
        while otel_bridge.stats().get("spool_failures", 0) == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        send("g", 5)
    failed = [r.getMessage() for r in caplog.records if "the spool" in r.getMessage() and "failed" in r.getMessage()]
    assert len(failed) == 1 and "full" in failed[0]
    receiver.behaviour.update(status=200)
    otel_bridge.flush(10.0)
    got = set(ids(receiver))
    on_disk = spool_rows(spool)
    # Every log is delivered or still on disk for the next process: none is lost.
    assert len(got) + on_disk >= 25 and {f"g-{i}" for i in range(5)} <= got


def test_the_spool_survives_configure_again_with_the_same_directory(tmp_path, receiver, refused_url):
    spool = str(tmp_path / "spool")
    otel_bridge.configure(settings(spool_dir=spool), endpoint=refused_url, api_key="k")
    send("a", 2)
    otel_bridge.flush(0.5)
    otel_bridge.configure(settings(spool_dir=spool), endpoint=refused_url, api_key="k")  # same binding
    s = otel_bridge.stats()
    assert s.get("logs_spooled", 0) == 2
