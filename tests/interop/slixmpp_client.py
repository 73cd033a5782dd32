"""An independent XMPP client (slixmpp's ClientXMPP) for Bridgehead's tests.

Logs in over STARTTLS on the c2s port (trusting CA, whichever SASL mechanism slixmpp picks),
sends one chat message to PEER, waits for the answer, prints its body and exits 0; exits 1
when the login fails or nothing comes back in time.

    python3 slixmpp_client.py JID PASSWORD HOST PORT CA PEER
"""

import asyncio
import sys

from slixmpp import ClientXMPP


class Probe(ClientXMPP):
    def __init__(self, jid, password, peer):
        super().__init__(jid, password)
        self.peer = peer
        self.answer = None
        self.failed = False
        self.add_event_handler("session_start", self.on_start)
        self.add_event_handler("message", self.on_message)
        self.add_event_handler("failed_auth", self.on_failed)

    async def on_start(self, _event):
        self.send_presence()
        self.send_message(mto=self.peer, mbody="hello from slixmpp", mtype="chat")

    def on_message(self, message):
        if message["type"] in ("chat", "normal"):
            self.answer = message["body"]
            self.disconnect()

    def on_failed(self, _event):
        self.failed = True
        self.disconnect()


async def main():
    jid, password, host, port, ca, peer = sys.argv[1:7]
    probe = Probe(jid, password, peer)
    probe.ca_certs = ca
    probe.connect(host, int(port))
    try:
        await asyncio.wait_for(probe.disconnected, timeout=20)
    except asyncio.TimeoutError:
        pass
    if probe.failed:
        print("login failed", flush=True)
        sys.exit(1)
    if probe.answer is None:
        print("no answer", flush=True)
        sys.exit(1)
    print("answer: " + probe.answer, flush=True)


asyncio.run(main())
