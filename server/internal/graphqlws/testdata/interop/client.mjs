// Drives a graphqlws test server with the reference graphql-ws client and
// prints what it saw as one JSON object on stdout. Run by
// TestInteropReferenceClient in graphqlws_test.go:
//
//   node client.mjs ws://127.0.0.1:PORT/
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

const url = process.argv[2];
if (!url) {
  console.error('usage: node client.mjs WS_URL');
  process.exit(2);
}

// Bound the whole run: the Go test also has a timeout, but a stuck client
// must not outlive it.
const watchdog = setTimeout(() => {
  console.error('interop: timed out');
  process.exit(3);
}, 20000);

// run executes one operation and collects every result until complete; it
// rejects with the error (or close event) that the client reports.
function run(client, query) {
  return new Promise((resolve, reject) => {
    const results = [];
    client.subscribe(
      { query },
      {
        next: (value) => results.push(value),
        error: (err) => reject(err),
        complete: () => resolve(results),
      },
    );
  });
}

const out = { serverPings: 0, clientPongs: 0 };

const client = createClient({
  url,
  webSocketImpl: WebSocket,
  connectionParams: { token: 'good' },
  retryAttempts: 0,
  // The client pings too, and expects pongs.
  keepAlive: 50,
  on: {
    ping: (received) => {
      if (received) out.serverPings++;
    },
    pong: (received) => {
      if (received) out.clientPongs++;
    },
  },
});

try {
  out.ticks = await run(client, 'subscription { ticks(n: 3) }');
  out.hello = await run(client, '{ hello viewer }');
  // Slow enough for both sides' pings to happen meanwhile.
  out.slowTicks = await run(client, 'subscription { ticks(n: 3, everyMs: 120) }');
  out.validation = await run(client, 'subscription { nope }').then(
    (r) => ({ unexpected: r }),
    (errs) => ({ errors: Array.isArray(errs) ? errs.map((e) => e.message) : String(errs) }),
  );
} finally {
  await client.dispose();
}

// A refused token: the client must report the 4403 close.
const refused = createClient({
  url,
  webSocketImpl: WebSocket,
  connectionParams: { token: 'bad' },
  retryAttempts: 0,
});
out.forbidden = await run(refused, '{ hello }').then(
  (r) => ({ unexpected: r }),
  (ev) => ({ code: ev?.code, reason: ev?.reason }),
);
await refused.dispose();

clearTimeout(watchdog);
console.log(JSON.stringify(out));
