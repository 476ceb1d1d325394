// A healthy WebSocket echo app (`ws` on the HTTP server on $PORT, any path) that swallows
// SIGTERM, as apps do that install a handler meaning to "finish first" and never exit: CF
// waits 10 s, then SIGKILLs it, and its clients see resets instead of a 1001 close.
const http = require('http');
const { WebSocketServer } = require('ws');

const server = http.createServer((req, res) => {
  res.writeHead(200, { 'Content-Type': 'text/plain' });
  res.end('ignores-sigterm: WebSocket echo on any path\n');
});
const wss = new WebSocketServer({ server });
wss.on('connection', (socket) => {
  socket.send('Hi, this is the Echo-Server');
  socket.on('message', (message) => socket.send('Echo: ' + message));
});
server.listen(process.env.PORT, () => console.log(`listening on port ${process.env.PORT}`));

process.on('SIGTERM', () => {
  console.log('SIGTERM received; finishing open work first (never exits)');
});
