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
    # What the Python library itself accepts, the gateway accepts, and the
    # Python verifier accepts the headers this test sends.
    body = json.dumps({"po": "PO0042"})
    headers = signed(body, "msg_check")
    assert Webhook(SECRET).verify(body, headers) == {"po": "PO0042"}
