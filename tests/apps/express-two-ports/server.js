// Express serves the page and the API on $PORT, and the WebSocket server gets a port of its
// own, as in many local setups (here 0: whatever port is free). On Cloud Foundry only $PORT
// is routed, so the page loads and the WebSocket never connects: the fix is
// tests/apps/express-shared (the WebSocket server on Express's HTTP server).
const express = require('express');
const { WebSocketServer } = require('ws');

const app = express();
app.get('/', (req, res) => res.send('express-two-ports: WebSocket echo on its own port\n'));
app.get('/healthz', (req, res) => res.send('ok\n'));
app.listen(process.env.PORT, () => console.log(`Express listening on port ${process.env.PORT}`));

const wss = new WebSocketServer({ port: 0 });
wss.on('listening', () => console.log(`WebSocket server listening on port ${wss.address().port}`));
wss.on('connection', (socket) => {
  socket.send('Hi, this is the Echo-Server');
  socket.on('message', (message) => {
    console.log('Received Message: ' + message);
    socket.send('Echo: ' + message);
  });
});
