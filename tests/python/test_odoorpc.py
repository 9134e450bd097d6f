"""OCA's odoorpc (JSON-RPC) against the simulator, unchanged."""

import odoorpc
import pytest


@pytest.fixture(scope="module")
def odoo(sim):
    client = odoorpc.ODOO(sim.host, port=sim.port)
    client.login(sim.db, "admin", sim.password)
    return client


def test_version_detection_and_login(sim, odoo):
    assert odoo.version.startswith(f"{sim.version}.0")
    assert odoo.env.uid == 2
    assert odoo.env.context["uid"] == 2
    assert "lang" in odoo.env.context


def test_wrong_password_is_refused(sim):
    client = odoorpc.ODOO(sim.host, port=sim.port)
    with pytest.raises(odoorpc.error.RPCError):
        client.login(sim.db, "admin", "wrong password")


def test_search_read_browse_create_write(odoo):
    Partner = odoo.env["res.partner"]
    rows = Partner.search_read([["is_company", "=", True]], ["name"], limit=3)
    assert rows and all(set(row) == {"id", "name"} for row in rows)

    new_id = Partner.create({"name": "odoorpc Partner", "city": "Ghent"})
    assert isinstance(new_id, int)
    partner = Partner.browse(new_id)
    assert partner.name == "odoorpc Partner"
    assert partner.city == "Ghent"
    [row] = Partner.browse([new_id]).read(["name", "city"])
    assert row["city"] == "Ghent"

    Partner.write([new_id], {"city": "Leuven"})
    assert Partner.browse(new_id).read(["city"])[0]["city"] == "Leuven"
    partner.name = "Renamed via attribute"
    assert Partner.search_count([["name", "=", "Renamed via attribute"]]) == 1


def test_server_errors_raise_rpcerror(odoo):
    with pytest.raises(odoorpc.error.RPCError) as error:
        odoo.execute_kw("res.partner", "search", [[["no_such_field", "=", 1]]])
    assert error.value.info["data"]["name"] == "builtins.ValueError"


def test_database_list(odoo, sim):
    if sim.is_simulator:
        assert odoo.db.list() == [sim.db]
    else:
        assert sim.db in odoo.db.list()
