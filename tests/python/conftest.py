"""Starts `planops odoo-sim` on a free port for the real-client tests.

The binary comes from $PLANOPS_BIN (default target/debug/planops, relative to
the repository root). The simulator prints one `PLANOPS_SIM_READY {json}` line
once it listens; the fixture reads the URL and the admin API key from it.
"""

import json
import os
import pathlib
import subprocess
import threading

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
READY_MARKER = "PLANOPS_SIM_READY "
START_TIMEOUT_SECONDS = 120
DATABASE = "planops"
ADMIN_PASSWORD = "admin-pw"


def _binary():
    configured = os.environ.get("PLANOPS_BIN", "target/debug/planops")
    path = pathlib.Path(configured)
    if not path.is_absolute():
        path = REPO_ROOT / path
    if not path.exists():
        pytest.fail(f"simulator binary not found at {path}; run `cargo build` or set PLANOPS_BIN")
    return path


class Simulator:
    def __init__(self, version):
        self.version = version
        self.process = subprocess.Popen(
            [
                str(_binary()),
                "odoo-sim",
                "--listen", "127.0.0.1:0",
                "--database", DATABASE,
                "--odoo-version", version,
                "--admin-password", ADMIN_PASSWORD,
                "--seed", "7",
                "--products", "20",
                "--warehouses", "2",
                "--history-days", "30",
                "--today", "2025-03-01",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.info = self._wait_ready()
        self.url = self.info["url"]
        host_port = self.url.split("://", 1)[1]
        self.host, port = host_port.rsplit(":", 1)
        self.port = int(port)
        self.db = DATABASE
        self.password = ADMIN_PASSWORD
        self.api_key = self.info["admin_api_key"]
        # Keep draining stdout so the simulator never blocks on a full pipe.
        threading.Thread(target=self.process.stdout.read, daemon=True).start()

    def _wait_ready(self):
        found = {}

        def read():
            for line in self.process.stdout:
                if line.startswith(READY_MARKER):
                    found["info"] = json.loads(line[len(READY_MARKER):])
                    return

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(START_TIMEOUT_SECONDS)
        if "info" not in found:
            self.stop()
            pytest.fail(f"odoo-sim {self.version} did not become ready")
        return found["info"]

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture(scope="module", params=["16", "17", "18", "19"])
def sim(request):
    simulator = Simulator(request.param)
    yield simulator
    simulator.stop()
