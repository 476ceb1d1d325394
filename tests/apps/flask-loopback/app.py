"""A Flask app with a Flask-Sock echo WebSocket on /ws, bound the way many tutorials bind
it: to 127.0.0.1. On Cloud Foundry the health check and gorouter reach the instance on its
container address, so it is never healthy ("Failed to make TCP connection to port 8080").
tests/apps/flask-fixed is the same app bound to 0.0.0.0."""

import os

from flask import Flask
from flask_sock import Sock

app = Flask(__name__)
sock = Sock(app)


@app.route("/")
def index():
    return "flask-loopback: WebSocket echo on /ws\n"


@sock.route("/ws")
def echo(ws):
    ws.send("Hi, this is the Echo-Server")
    while True:
        message = ws.receive()
        print(f"Received Message: {message}")
        ws.send(f"Echo: {message}")


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ["PORT"]))
