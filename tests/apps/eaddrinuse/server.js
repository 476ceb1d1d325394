// Express and a `ws` server each told to listen on $PORT, the question asked under the
// article ("I didn't manage to create a socket server with port 8080 coz the port is
// already in use"): whichever binds second fails with EADDRINUSE, and with no 'error'
// handler the process crashes. The fix: new WebSocketServer({ server }) (express-shared).
const express = require('express');
const { WebSocketServer } = require('ws');

const app = express();
app.get('/', (req, res) => res.send('eaddrinuse: never gets this far\n'));
app.listen(process.env.PORT, () => console.log(`Express listening on port ${process.env.PORT}`));

const wss = new WebSocketServer({ port: process.env.PORT });
wss.on('connection', (socket) => {
  socket.send('Hi, this is the Echo-Server');
  socket.on('message', (message) => socket.send('Echo: ' + message));
});
