"""``twistd homestead`` end to end (issue #5's must-show): provisioned with
``clearwater-provision``, read over the homestead API, and still there after a restart."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.integration._peers import (
    HOST,
    STARTUP_TIMEOUT,
    TWISTD,
    Processes,
    describe,
    free_port,
    port_is_bound,
    processes,
    run,
    sprout_env,
    wait_until,
)

__all__ = ["processes"]  # the fixture

PROVISION = (sys.executable, "-m", "clearwater.tools.provision")


def start_homestead(
    processes: Processes, store: str, http_port: int, prov_port: int, name: str = "homestead"
) -> subprocess.Popen[bytes]:
    args = [*TWISTD, "-n", "--pidfile=", "homestead", "--home-domain", "example.com"]
    args += ["--local-ip", HOST, "--http-port", str(http_port), "--prov-port", str(prov_port)]
    args += ["--store", store]
    process = processes.start(name, args, env=sprout_env())
    wait_until(
        lambda: (
            process.poll() is not None
            or (port_is_bound("tcp", http_port) and port_is_bound("tcp", prov_port))
        ),
        STARTUP_TIMEOUT,
        name + " to listen",
    )
    assert process.poll() is None, processes.log(name)
    return process


def get_json(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def provision(*args: str) -> subprocess.CompletedProcess[str]:
    return run([*PROVISION, *args], timeout=120)


def test_provisioned_user_is_served_and_survives_a_restart(
    processes: Processes, tmp_path: Path
) -> None:
    store = "sqlite:" + str(tmp_path / "hs.db")
    http_port, prov_port = free_port(), free_port()
    server = "http://" + HOST + ":" + str(prov_port)
    homestead = start_homestead(processes, store, http_port, prov_port)

    created = provision("--server", server, "create-user", "sip:alice@example.com",
                        "--password", "secret")  # fmt: skip
    assert created.returncode == 0, describe(created)
    digest_url = f"http://{HOST}:{http_port}/impi/alice@example.com/digest"
    expected = hashlib.md5(b"alice@example.com:example.com:secret").hexdigest()
    assert get_json(digest_url) == (200, {"digest_ha1": expected})

    status, body = get_json(f"http://{HOST}:{http_port}/impi/nobody@example.com/digest")
    assert status == 404 and "error" in body

    homestead.terminate()
    homestead.wait(timeout=30)
    start_homestead(processes, store, http_port, prov_port, name="homestead-again")
    assert get_json(digest_url) == (200, {"digest_ha1": expected})
    shown = provision("--server", server, "show-user", "sip:alice@example.com")
    assert shown.returncode == 0, describe(shown)
    assert "alice@example.com" in shown.stdout


def test_bad_store_url_is_a_usage_error() -> None:
    result = subprocess.run(
        [*TWISTD, "-n", "--pidfile=", "homestead", "--home-domain", "example.com",
         "--store", "memcached://127.0.0.1"],
        env=sprout_env(), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    # twistd exits 1 on a usage error from Twisted 26 on, 0 before (PyPy's 25.5): the
    # message is what counts, and that nothing was left running (run() returned).
    assert "--store" in result.stdout + result.stderr
    assert "memcached cannot hold this data" in result.stdout + result.stderr


def test_unusable_store_stops_homestead_with_exit_status_1(tmp_path: Path) -> None:
    not_a_database = tmp_path / "hs.db"
    not_a_database.write_bytes(b"this is not a SQLite file" * 100)
    result = subprocess.run(
        [*TWISTD, "-n", "--pidfile=", "homestead", "--home-domain", "example.com",
         "--http-port", str(free_port()), "--prov-port", str(free_port()),
         "--store", "sqlite:" + str(not_a_database)],
        env=sprout_env(), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    assert "cannot use the store sqlite:" + str(not_a_database) in result.stdout
