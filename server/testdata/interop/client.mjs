// Drives a real Kiln server with the reference graphql-ws client. Run by
// TestInteropClients in server/interop_test.go:
//
//   node client.mjs ws://127.0.0.1:PORT/graphql ACCESS_TOKEN
//
// Prints on stdout, one line each:
//   {"badTokenClose":4403}   the close code for a refused token
//   ready                    subscribed: the test may now create 3 posts
//   {"events":[...]}         the 3 postCreated payloads, in arrival order
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

const [url, token] = process.argv.slice(2);
if (!url || !token) {
  console.error('usage: node client.mjs WS_URL ACCESS_TOKEN');
  process.exit(2);
}

// Bound the whole run: the Go test also has a timeout, but a stuck client
// must not outlive it.
const watchdog = setTimeout(() => {
  console.error('interop: timed out');
  process.exit(3);
}, 25000);

// 1. A refused token: the server closes the socket with 4403 at
// connection_init, and the client reports that close event.
const refused = createClient({
  url,
  webSocketImpl: WebSocket,
  connectionParams: { accessToken: 'not-a-token' },
  retryAttempts: 0,
});
const code = await new Promise((resolve) => {
  refused.subscribe(
    { query: 'subscription { postCreated { id } }' },
    {
      next: () => resolve('unexpected data'),
      error: (ev) => resolve(ev?.code ?? String(ev)),
      complete: () => resolve('unexpected complete'),
    },
  );
});
await refused.dispose();
console.log(JSON.stringify({ badTokenClose: code }));

// 2. Readiness. graphql-transport-ws has no acknowledgement for subscribe,
// so right after the subscribe frame this socket sends a ping: the server
// reads messages in order, so its pong means it has taken the subscription.
let pinged = false;
let ready = false;
class ProbingWebSocket extends WebSocket {
  send(data, ...rest) {
    super.send(data, ...rest);
    if (!pinged && JSON.parse(String(data)).type === 'subscribe') {
      pinged = true;
      super.send(JSON.stringify({ type: 'ping' }));
    }
  }
}

const client = createClient({
  url,
  webSocketImpl: ProbingWebSocket,
  connectionParams: { accessToken: token },
  retryAttempts: 0,
  on: {
    pong: (received) => {
      if (received && pinged && !ready) {
        ready = true;
        console.log('ready');
      }
    },
  },
});

// 3. Exactly 3 events, then unsubscribe and exit.
const events = await new Promise((resolve, reject) => {
  const got = [];
  const unsubscribe = client.subscribe(
    { query: 'subscription { postCreated { id body } }' },
    {
      next: (value) => {
        if (value.errors) {
          reject(new Error('errors: ' + JSON.stringify(value.errors)));
          return;
        }
        got.push(value.data.postCreated);
        if (got.length === 3) {
          unsubscribe();
          resolve(got);
        }
      },
      error: (err) => reject(new Error('subscription error: ' + JSON.stringify(err?.code ?? err))),
      complete: () => reject(new Error(`completed after ${got.length} events`)),
    },
  );
});
await client.dispose();

clearTimeout(watchdog);
console.log(JSON.stringify({ events }));
