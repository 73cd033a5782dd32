"""wxcadm's XSI class (PyPI wxcadm 4.6) against Bridgehead's XSI-Actions.

Usage: wxcadm_xsi.py ACTIONS_ENDPOINT USER PASSWORD   (trust the CA with REQUESTS_CA_BUNDLE)

wxcadm normally learns the XSI endpoint and the user from Webex: an Org carries
`xsi['actions_endpoint']` and the API headers, a Person the Webex id that encodes the
BroadWorks user id. Those two are stood in for here; everything XSI is wxcadm's own code:
the URLs it builds, its query parameters, its BadgerFish JSON parsing.
"""
import base64
import sys
import types

from wxcadm.xsi import XSI

endpoint, user, password = sys.argv[1:4]
basic = base64.b64encode(f"{user}:{password}".encode()).decode()
org = types.SimpleNamespace(
    xsi={"actions_endpoint": endpoint},
    api=types.SimpleNamespace(headers={"Authorization": f"Basic {basic}"}),
)
webex_id = base64.b64encode(f"ciscospark://us/PEOPLE/{user}".encode()).decode()
person = types.SimpleNamespace(id=webex_id, email=user)

xsi = XSI(org, person, get_profile=True)
profile = xsi.profile
assert profile, "no profile"
print(
    f"profile: {profile['user_id']} group {profile['group_id']} "
    f"provider {profile['service_provider']} country {profile['country_code']}"
)
registrations = xsi.registrations
assert registrations is not False, "registrations failed"
assert "Registrations" in registrations, registrations
print("registrations: ok")
codes = xsi.fac_list
dnd = next(c for c in codes if c.code == "*78")
print(f"fac: {len(codes)} codes, {dnd.code} = {dnd.feature}")
services = xsi.get_services()
read = [name for name, value in services.items() if name != "list" and isinstance(value, dict)]
assert len(read) == len(services["list"]), services
print(f"services: {len(read)} read")
for kind in ["Enterprise", "Group", "Personal"]:
    records = xsi.directory(type=kind, any_match=False)
    assert records is not None, kind
    print(f"{kind.lower()}: {len(records)}")
