// xmpp.js (@xmpp/client) logs in, sends a few requests, then idles; prints what it saw as
// one JSON line: whether XEP-0198 was enabled and how many <r/> the server sent while idle.
// Usage: node idle_acks.mjs SERVICE DOMAIN USER PASSWORD IDLE_MS
// (trust the server's CA with NODE_EXTRA_CA_CERTS).
import { client, xml } from "@xmpp/client";

// Node before 22 has no WebSocket of its own; xmpp.js then uses the one from `ws`.
globalThis.WebSocket ??= (await import("ws")).default;

const [service, domain, username, password, idleMs] = process.argv.slice(2);
const SM = "urn:xmpp:sm:3";
const xmpp = client({ service, domain, username, password, resource: "xmppjs" });

let requests = 0;
let idle = false;
let idleRequests = 0;
xmpp.on("element", (element) => {
  if (element.is("r", SM)) {
    requests += 1;
    if (idle) idleRequests += 1;
  }
});
xmpp.on("error", (error) => {
  console.error("xmpp.js error:", error.message);
});

const timeout = setTimeout(() => {
  console.error("timed out");
  process.exit(2);
}, Number(idleMs) + 20000);

xmpp.on("online", async (address) => {
  await xmpp.send(xml("presence"));
  for (let n = 0; n < 5; n++) {
    await xmpp.iqCaller.request(
      xml("iq", { type: "get", to: domain }, xml("ping", { xmlns: "urn:xmpp:ping" })),
    );
  }
  idle = true;
  setTimeout(async () => {
    const sm = xmpp.streamManagement.enabled;
    console.log(JSON.stringify({ jid: address.toString(), sm, requests, idleRequests }));
    clearTimeout(timeout);
    await xmpp.stop();
    process.exit(0);
  }, Number(idleMs));
});

await xmpp.start();
