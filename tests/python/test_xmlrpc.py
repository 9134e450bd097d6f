"""Odoo's documented external-API walkthrough with Python's own xmlrpc.client."""

import xmlrpc.client

import pytest


@pytest.fixture(scope="module")
def api(sim):
    common = xmlrpc.client.ServerProxy(f"{sim.url}/xmlrpc/2/common")
    models = xmlrpc.client.ServerProxy(f"{sim.url}/xmlrpc/2/object")
    return sim, common, models


def test_version_and_authenticate(api):
    sim, common, _ = api
    version = common.version()
    assert version["server_version"].startswith(f"{sim.version}.0")
    assert version["server_version_info"][0] == int(sim.version)
    assert version["protocol_version"] == 1
    uid = common.authenticate(sim.db, "admin", sim.password, {})
    assert uid == 2
    assert common.authenticate(sim.db, "admin", sim.api_key, {}) == uid
    assert common.login(sim.db, "admin", "wrong password") is False
    if sim.is_simulator:
        # The simulator's second user; a real database has its own.
        assert common.authenticate(sim.db, "planner", "planner", {}) not in (False, uid)


def test_walkthrough(api):
    sim, common, models = api
    db, password = sim.db, sim.api_key
    uid = common.authenticate(db, "admin", password, {})

    assert models.execute_kw(
        db, uid, password, "res.partner", "check_access_rights", ["read"], {"raise_exception": False}
    ) is True

    companies = models.execute_kw(db, uid, password, "res.partner", "search", [[["is_company", "=", True]]])
    assert companies and all(isinstance(i, int) for i in companies)
    paged = models.execute_kw(
        db, uid, password, "res.partner", "search", [[["is_company", "=", True]]], {"offset": 1, "limit": 2}
    )
    assert len(paged) <= 2
    assert set(paged) <= set(companies)
    count = models.execute_kw(db, uid, password, "res.partner", "search_count", [[["is_company", "=", True]]])
    assert count == len(companies)

    ids = models.execute_kw(db, uid, password, "res.partner", "search", [[["is_company", "=", True]]], {"limit": 1})
    [record] = models.execute_kw(db, uid, password, "res.partner", "read", [ids])
    assert record["id"] == ids[0]
    assert "name" in record
    [short] = models.execute_kw(db, uid, password, "res.partner", "read", [ids], {"fields": ["name", "city", "email"]})
    assert set(short) == {"id", "name", "city", "email"}

    fields = models.execute_kw(
        db, uid, password, "res.partner", "fields_get", [], {"attributes": ["string", "help", "type"]}
    )
    assert fields["name"]["type"] == "char"
    assert set(fields["name"]) <= {"string", "help", "type"}

    rows = models.execute_kw(
        db, uid, password, "res.partner", "search_read",
        [[["is_company", "=", True]]], {"fields": ["name", "city"], "limit": 5},
    )
    assert 0 < len(rows) <= 5
    assert all(set(row) == {"id", "name", "city"} for row in rows)

    new_id = models.execute_kw(db, uid, password, "res.partner", "create", [{"name": "New Partner"}])
    assert isinstance(new_id, int)
    assert models.execute_kw(db, uid, password, "res.partner", "write", [[new_id], {"name": "Newer partner"}]) is True
    [renamed] = models.execute_kw(db, uid, password, "res.partner", "read", [[new_id]], {"fields": ["display_name"]})
    assert renamed["display_name"] == "Newer partner"

    assert models.execute_kw(db, uid, password, "res.partner", "unlink", [[new_id]]) is True
    assert models.execute_kw(db, uid, password, "res.partner", "search", [[["id", "=", new_id]]]) == []


def test_faults_are_raised_as_xmlrpc_faults(api):
    sim, _, models = api
    with pytest.raises(xmlrpc.client.Fault) as unknown_model:
        models.execute_kw(sim.db, 2, sim.password, "no.such.model", "search", [[]])
    assert unknown_model.value.faultCode == 2
    with pytest.raises(xmlrpc.client.Fault) as denied:
        models.execute_kw(sim.db, 2, "not the password", "res.partner", "search", [[]])
    assert denied.value.faultCode == 3
    with pytest.raises(xmlrpc.client.Fault) as bad_field:
        models.execute_kw(sim.db, 2, sim.password, "res.partner", "search", [[["no_such_field", "=", 1]]])
    assert bad_field.value.faultCode == 1
    assert "Traceback" in bad_field.value.faultString


def test_legacy_route_uses_string_fault_codes(sim):
    models = xmlrpc.client.ServerProxy(f"{sim.url}/xmlrpc/object")
    with pytest.raises(xmlrpc.client.Fault) as denied:
        models.execute_kw(sim.db, 2, "not the password", "res.partner", "search", [[]])
    assert denied.value.faultCode == "AccessDenied"


def test_read_group_and_stock_quantities(api):
    """read_group totals agree with the rows they group, and a product's
    qty_available in a warehouse equals its quants there."""
    sim, common, models = api
    db, password = sim.db, sim.api_key
    uid = common.authenticate(db, "admin", password, {})

    def call(model, method, args, kwargs=None):
        return models.execute_kw(db, uid, password, model, method, args, kwargs or {})

    domain = [["state", "=", "done"]]
    groups = call(
        "stock.move", "read_group", [domain, ["product_uom_qty:sum"], ["product_id", "date:month"]], {"lazy": False}
    )
    assert groups
    moves = call("stock.move", "search_read", [domain], {"fields": ["product_uom_qty"]})
    assert sum(g["__count"] for g in groups) == len(moves)
    assert abs(sum(g["product_uom_qty"] for g in groups) - sum(m["product_uom_qty"] for m in moves)) < 1e-6
    first = groups[0]
    assert isinstance(first["product_id"], list) and len(first["product_id"]) == 2
    assert first["__range"]["date:month"]["from"].endswith("-01 00:00:00")
    # The group's own domain selects exactly its records.
    assert call("stock.move", "search_count", [first["__domain"]]) == first["__count"]

    lazy = call("stock.move", "read_group", [domain, ["product_uom_qty"], ["product_id", "date:month"]])
    assert all("product_id_count" in g and g["__context"] == {"group_by": ["date:month"]} for g in lazy)

    [warehouse] = call("stock.warehouse", "search_read", [[]], {"fields": ["view_location_id"], "limit": 1})
    [quant] = call(
        "stock.quant",
        "search_read",
        [[["location_id.usage", "=", "internal"], ["quantity", ">", 0],
          ["location_id", "child_of", warehouse["view_location_id"][0]]]],
        {"fields": ["product_id"], "limit": 1},
    )
    product = quant["product_id"][0]
    quants = call(
        "stock.quant",
        "search_read",
        [[["product_id", "=", product], ["location_id.usage", "=", "internal"],
          ["location_id", "child_of", warehouse["view_location_id"][0]]]],
        {"fields": ["quantity", "reserved_quantity"]},
    )
    [row] = call(
        "product.product",
        "read",
        [[product], ["qty_available", "free_qty", "virtual_available", "incoming_qty", "outgoing_qty"]],
        # 18 renamed the context key that scopes stock figures to a warehouse.
        {"context": {"warehouse_id" if int(sim.version) >= 18 else "warehouse": warehouse["id"]}},
    )
    assert abs(row["qty_available"] - sum(q["quantity"] for q in quants)) < 1e-6
    assert abs(row["free_qty"] - sum(q["quantity"] - q["reserved_quantity"] for q in quants)) < 1e-6
    expected = row["qty_available"] + row["incoming_qty"] - row["outgoing_qty"]
    assert abs(row["virtual_available"] - expected) < 1e-6
