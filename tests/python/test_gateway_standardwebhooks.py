"""Deliveries signed by the PyPI `standardwebhooks` package against the gateway.

The gateway is a library without its own server command, so this test is
driven by `cargo test --test gateway python_standardwebhooks_sender_is_accepted`,
which starts a gateway on loopback, passes its route URL and secret in
PLANOPS_GATEWAY_URL / PLANOPS_GATEWAY_SECRET, runs this file with pytest and
then counts the handler's effects on the Rust side. Run alone (as
scripts/test.sh does for the whole folder) it skips.
"""

import json
import os
import urllib.error
import urllib.request
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from standardwebhooks.webhooks import Webhook

URL = os.environ.get("PLANOPS_GATEWAY_URL")
SECRET = os.environ.get("PLANOPS_GATEWAY_SECRET")

pytestmark = pytest.mark.skipif(
    not URL, reason="driven by cargo test --test gateway (needs a running gateway)"
)


def post(body, headers):
    request = urllib.request.Request(URL, data=body.encode(), method="POST")
    request.add_header("Content-Type", "application/json")
    for name, value in headers.items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def signed(body, msg_id, when=None, secret=None):
    when = when or datetime.now(tz=timezone.utc)
    signature = Webhook(secret or SECRET).sign(msg_id=msg_id, timestamp=when, data=body)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(when.timestamp())),
        "webhook-signature": signature,
    }


def test_signed_deliveries_dedup_and_refusals():
    first = f"msg_{uuid.uuid4().hex}"
    body = json.dumps({"type": "po.promised", "po": "PO0042", "lines": [{"qty": 5}]})
    status, answer = post(body, signed(body, first))
    assert status == 200, answer
    assert answer["accepted"] is True

    # The sender's retry of the same delivery: no second effect.
    status, answer = post(body, signed(body, first))
    assert (status, answer.get("duplicate")) == (200, True)

    # A rotation-style header listing a foreign signature before the right one.
    second = f"msg_{uuid.uuid4().hex}"
    other = Webhook("whsec_" + "b3RoZXItc2VjcmV0LWtleS0xMjM0NTY3ODkw").sign(
        msg_id=second, timestamp=datetime.now(tz=timezone.utc), data=body
    )
    headers = signed(body, second)
    headers["webhook-signature"] = f"{other} {headers['webhook-signature']}"
    status, answer = post(body, headers)
    assert status == 200, answer

    # Tampered body, stale timestamp, foreign secret: refused alike.
    third = f"msg_{uuid.uuid4().hex}"
    status, _ = post(body.replace("PO0042", "PO0043"), signed(body, third))
    assert status == 401
    stale = datetime.now(tz=timezone.utc) - timedelta(minutes=10)
    status, _ = post(body, signed(body, third, when=stale))
    assert status == 401
    status, _ = post(body, {**signed(body, third), "webhook-signature": other})
    assert status == 401


def test_gateway_agrees_with_the_python_verifier():
    # Each delivery goes to both verifiers: the Python library's verdict and
    # the gateway's answer must agree, and exactly one of them is genuine.
    from standardwebhooks.webhooks import WebhookVerificationError

    body = json.dumps({"po": "PO0077"})
    genuine = signed(body, f"msg_{uuid.uuid4().hex}")
    now = int(datetime.now(tz=timezone.utc).timestamp())
    version, signature = genuine["webhook-signature"].split(",", 1)
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    cases = {
        "genuine": (body, genuine),
        "body changed": (body.replace("77", "78"), genuine),
        "id changed": (body, {**genuine, "webhook-id": genuine["webhook-id"] + "x"}),
        "timestamp moved": (body, {**genuine, "webhook-timestamp": str(now + 1)}),
        "timestamp too old": (
            body,
            signed(body, f"msg_{uuid.uuid4().hex}", when=datetime.now(tz=timezone.utc) - timedelta(hours=1)),
        ),
        "signature flipped": (body, {**genuine, "webhook-signature": f"{version},{flipped}"}),
        "unknown version": (body, {**genuine, "webhook-signature": f"v9,{signature}"}),
        "no signature": (body, {k: v for k, v in genuine.items() if k != "webhook-signature"}),
    }
    verdicts = {}
    for name, (payload, headers) in cases.items():
        try:
            Webhook(SECRET).verify(payload, headers)
            python_accepts = True
        except WebhookVerificationError:
            python_accepts = False
        status, _ = post(payload, headers)
        assert status in (200, 401), (name, status)
        verdicts[name] = (python_accepts, status == 200)
    assert verdicts["genuine"] == (True, True), verdicts
    disagreements = {n: v for n, v in verdicts.items() if v[0] != v[1]}
    assert not disagreements, disagreements
    assert [n for n, v in verdicts.items() if v[1]] == ["genuine"], verdicts
