// Express and `ws` sharing one HTTP server on $PORT (all interfaces): the page on /, the
// WebSocket echo on /ws, both through the route. On SIGTERM the WebSockets close with 1001
// (going away) and the server stops, well within CF's 10 s.
const express = require('express');
const { WebSocketServer } = require('ws');

const app = express();
app.get('/', (req, res) => res.send('express-shared: WebSocket echo on /ws\n'));
app.get('/healthz', (req, res) => res.send('ok\n'));
const server = app.listen(process.env.PORT, () => console.log(`listening on port ${process.env.PORT}`));

const wss = new WebSocketServer({ server, path: '/ws' });
wss.on('connection', (socket) => {
  socket.send('Hi, this is the Echo-Server');
  socket.on('message', (message) => {
    console.log('Received Message: ' + message);
    socket.send('Echo: ' + message);
  });
});

process.on('SIGTERM', () => {
  console.log('SIGTERM: closing WebSockets with 1001 and stopping');
  for (const socket of wss.clients) socket.close(1001, 'server shutting down');
  wss.close();
  server.close(() => process.exit(0));
  server.closeAllConnections();
});
