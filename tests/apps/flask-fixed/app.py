"""tests/apps/flask-loopback, fixed: the same Flask app with its Flask-Sock echo WebSocket
on /ws, bound to 0.0.0.0 and $PORT as Cloud Foundry needs; /healthz for an http health
check."""

import os

from flask import Flask
from flask_sock import Sock

app = Flask(__name__)
sock = Sock(app)


@app.route("/")
def index():
    return "flask-fixed: WebSocket echo on /ws\n"


@app.route("/healthz")
def healthz():
    return "ok\n"


@sock.route("/ws")
def echo(ws):
    ws.send("Hi, this is the Echo-Server")
    while True:
        message = ws.receive()
        print(f"Received Message: {message}")
        ws.send(f"Echo: {message}")


if __name__ == "__main__":
    app.run(host="0.0.0.0", port=int(os.environ["PORT"]))
