// Boots the embedded GraphiQL explorer. Kept out of index.html so the page
// works under a Content-Security-Policy without 'unsafe-inline'.
(function () {
  'use strict';

  var container = document.getElementById('graphiql');
  var endpoint = container.getAttribute('data-endpoint') || '/graphql';
  // Resolve the (usually absolute-path) endpoint against the page location.
  var httpURL = new URL(endpoint, window.location.href);

  function plainFetcher(params, opts) {
    var headers = { 'Content-Type': 'application/json', Accept: 'application/json' };
    if (opts && opts.headers) {
      for (var k in opts.headers) {
        if (Object.prototype.hasOwnProperty.call(opts.headers, k)) headers[k] = opts.headers[k];
      }
    }
    return fetch(httpURL.href, {
      method: 'POST',
      headers: headers,
      body: JSON.stringify(params),
      credentials: 'same-origin'
    }).then(function (res) { return res.json(); });
  }

  function makeFetcher() {
    if (typeof GraphiQL.createFetcher !== 'function') return plainFetcher;
    var opts = { url: httpURL.href };
    // The GraphiQL UMD bundle ships the graphql-ws client; it connects lazily,
    // only when a subscription is actually run, so a server without a
    // websocket endpoint costs nothing until then.
    if (httpURL.protocol === 'http:' || httpURL.protocol === 'https:') {
      var wsURL = new URL(httpURL.href);
      wsURL.protocol = httpURL.protocol === 'https:' ? 'wss:' : 'ws:';
      opts.subscriptionUrl = wsURL.href;
    }
    try {
      return GraphiQL.createFetcher(opts);
    } catch (err) {
      console.warn('GraphiQL: websocket fetcher unavailable, using HTTP only', err);
      try {
        return GraphiQL.createFetcher({ url: httpURL.href });
      } catch (err2) {
        return plainFetcher;
      }
    }
  }

  var defaultQuery = [
    '# Kiln GraphQL explorer: requests go to ' + httpURL.pathname,
    '#',
    '# To authenticate, open "Headers" below and paste',
    '# a JSON object, for example:',
    '#',
    '#   { "Authorization": "Bearer <token>" }',
    '# or',
    '#   { "X-Kiln-Admin-Secret": "<secret>" }',
    '#',
    '# Headers stay in memory; the browser does not save them.',
    '',
    'query {',
    '  __typename',
    '}',
    ''
  ].join('\n');

  container.textContent = '';
  ReactDOM.createRoot(container).render(
    React.createElement(GraphiQL, {
      fetcher: makeFetcher(),
      defaultQuery: defaultQuery,
      isHeadersEditorEnabled: true,
      shouldPersistHeaders: false,
      defaultEditorToolsVisibility: 'headers'
    })
  );
})();
