// A healthy WebSocket echo app (`ws` on a Node HTTP server on $PORT, any path) deployed
// with the article's advice, `health-check-type: none`: it works, but CF would not have
// noticed if it did not listen on $PORT at all.
const http = require('http');
const { WebSocketServer } = require('ws');

const server = http.createServer((req, res) => {
  res.writeHead(200, { 'Content-Type': 'text/plain' });
  res.end('health-none: WebSocket echo on any path\n');
});
const wss = new WebSocketServer({ server });
wss.on('connection', (socket) => {
  socket.send('Hi, this is the Echo-Server');
  socket.on('message', (message) => {
    console.log('Received Message: ' + message);
    socket.send('Echo: ' + message);
  });
});
server.listen(process.env.PORT, () => console.log(`listening on port ${process.env.PORT}`));
