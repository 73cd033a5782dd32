"""wxcadm's XSI call control (PyPI wxcadm 4.6) against Bridgehead's calls resource.

Usage: wxcadm_calls.py ACTIONS_ENDPOINT USER PASSWORD ADDRESS   (trust the CA with REQUESTS_CA_BUNDLE)

Places a call to ADDRESS with wxcadm's Call.originate, waits (polling Call.status, at most
20 s) for the far end to answer, sends DTMF, holds, retrieves and hangs up: every request
and every parse of the BadgerFish answers is wxcadm's own code. The Org and Person that
wxcadm normally learns from Webex are stood in for, as in wxcadm_xsi.py.
"""
import base64
import sys
import time
import types

from wxcadm.xsi import XSI

endpoint, user, password, address = sys.argv[1:5]
basic = base64.b64encode(f"{user}:{password}".encode()).decode()
org = types.SimpleNamespace(
    xsi={"actions_endpoint": endpoint},
    api=types.SimpleNamespace(headers={"Authorization": f"Basic {basic}"}),
)
webex_id = base64.b64encode(f"ciscospark://us/PEOPLE/{user}".encode()).decode()
person = types.SimpleNamespace(id=webex_id, email=user)

xsi = XSI(org, person)
call = xsi.new_call(address=address)
assert call.id, "the call was not placed"
print(f"placed: {call.id} tracking {call._external_tracking_id}", flush=True)


def state():
    status = call.status
    assert status, "no call status"
    return status["state"]


deadline = time.time() + 20
while state() != "Active":
    assert time.time() < deadline, f"not answered: {state()}"
    time.sleep(0.05)
print(f"answered: {call.status['remote_party']['address']}", flush=True)
assert call.send_dtmf("12#"), "dtmf"
assert call.hold(), "hold"
assert state() == "Held", state()
print("held", flush=True)
assert call.resume(), "resume"
assert state() == "Active", state()
print("retrieved", flush=True)
assert [c.id for c in xsi.calls] == [call.id], "the call is listed"
assert call.hangup(), "hangup"
assert xsi.calls == [], "no call is left"
print("released", flush=True)
