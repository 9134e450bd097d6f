"""The Odoo the real-client tests talk to.

By default, `planops odoo-sim` on a free port in each version mode (16 to 19).
The binary comes from $PLANOPS_BIN (default target/debug/planops, relative to
the repository root). The simulator prints one `PLANOPS_SIM_READY {json}` line
once it listens; the fixture reads the URL and the admin API key from it.

With PLANOPS_ODOO_URL set (see docs/real-odoo.md: `eval "$(scripts/real-odoo.sh
env --version 18)"`), the same tests run against that real Odoo instead, with
PLANOPS_ODOO_DB, PLANOPS_ODOO_LOGIN, PLANOPS_ODOO_PASSWORD, PLANOPS_ODOO_API_KEY
and PLANOPS_ODOO_VERSION. The tests create their own records and assume nothing
of the database's users beyond the admin.
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
    is_simulator = True

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


class RealOdoo:
    """A running Odoo named by the environment; never stopped by the tests."""

    is_simulator = False

    def __init__(self):
        env = os.environ
        self.url = env["PLANOPS_ODOO_URL"].rstrip("/")
        host_port = self.url.split("://", 1)[1]
        self.host, port = host_port.rsplit(":", 1) if ":" in host_port else (host_port, "80")
        self.port = int(port)
        self.db = env.get("PLANOPS_ODOO_DB", "planops")
        self.login = env.get("PLANOPS_ODOO_LOGIN", "admin")
        self.password = env.get("PLANOPS_ODOO_PASSWORD", "admin")
        self.api_key = env.get("PLANOPS_ODOO_API_KEY") or self.password
        self.version = env.get("PLANOPS_ODOO_VERSION") or self._probe_version()

    def _probe_version(self):
        import xmlrpc.client

        common = xmlrpc.client.ServerProxy(f"{self.url}/xmlrpc/2/common")
        return str(common.version()["server_version_info"][0])

    def stop(self):
        pass


def _targets():
    if os.environ.get("PLANOPS_ODOO_URL"):
        return ["real"]
    return ["16", "17", "18", "19"]


@pytest.fixture(scope="module", params=_targets())
def sim(request):
    odoo = RealOdoo() if request.param == "real" else Simulator(request.param)
    yield odoo
    odoo.stop()
