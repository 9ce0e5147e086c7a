// Starts GraphiQL on the page served by microframework-graphql.
//
// Kept out of the HTML so that the page works under a Content-Security-Policy without
// 'unsafe-inline' scripts. The endpoints come from data attributes of the #graphiql element.
(function () {
  'use strict';
  var root = document.getElementById('graphiql');
  if (!root || typeof GraphiQL === 'undefined' || typeof React === 'undefined' || typeof ReactDOM === 'undefined') {
    if (root) {
      root.textContent = 'GraphiQL could not be loaded.';
    }
    return;
  }
  var endpoint = new URL(root.getAttribute('data-endpoint') || '/graphql', window.location.href);
  var options = { url: endpoint.href };
  var wsPath = root.getAttribute('data-subscription-endpoint');
  if (wsPath) {
    var ws = new URL(wsPath, window.location.href);
    ws.protocol = ws.protocol === 'https:' ? 'wss:' : 'ws:';
    // Headers typed in the headers editor (such as Authorization) are sent as the
    // connection_init payload of each subscription.
    options.subscriptionUrl = ws.href;
  }
  var fetcher = GraphiQL.createFetcher(options);
  ReactDOM.createRoot(root).render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultEditorToolsVisibility: true,
      shouldPersistHeaders: false,
    })
  );
})();
