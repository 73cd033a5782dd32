"""An independent XEP-0114 implementation (slixmpp's ComponentXMPP) for Bridgehead's tests.

Connects over plain TCP, sends one message to PEER, waits for the answer, prints its body
and exits 0; exits 1 when nothing comes back in time.

    python3 slixmpp_component.py NAME SECRET HOST PORT PEER
"""

import asyncio
import sys

from slixmpp.componentxmpp import ComponentXMPP


class Probe(ComponentXMPP):
    def __init__(self, name, secret, host, port, peer):
        super().__init__(name, secret, host, port)
        self.peer = peer
        self.answer = None
        self.add_event_handler("session_start", self.on_start)
        self.add_event_handler("message", self.on_message)

    def on_start(self, _event):
        self.send_message(mto=self.peer, mfrom="probe@" + self.boundjid.bare, mbody="hello from slixmpp")

    def on_message(self, message):
        self.answer = message["body"]
        self.disconnect()


async def main():
    name, secret, host, port, peer = sys.argv[1:6]
    probe = Probe(name, secret, host, int(port), peer)
    probe.connect()
    try:
        await asyncio.wait_for(probe.disconnected, timeout=20)
    except asyncio.TimeoutError:
        pass
    if probe.answer is None:
        print("no answer", flush=True)
        sys.exit(1)
    print("answer: " + probe.answer, flush=True)


asyncio.run(main())
