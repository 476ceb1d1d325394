const WebSocket = require('ws');

//replace the url with yours after pushing the app wss://<your-app>.<your-host>
//do not specify a port
//you can use secure websockets because of the SSL-Termination
const url = "wss://<your-app>.<your-host>"
const ws = new WebSocket(url);

ws.on('open', function() {
  const message = 'Hi there!'
  console.log('Sent Message: '+ message)
  ws.send(message);
});
ws.on('error', function(data) {
  console.log('Error: ' + data);
});
ws.on('message', function(data, flags) {
  console.log('Recieved Message: ' + data);
});
ws.on('close', function() {
  console.log('Disconnected from Server');
});
