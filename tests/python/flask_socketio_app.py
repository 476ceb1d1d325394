"""A Flask-SocketIO app (python-socketio, Engine.IO 4) for wscheck's protocol tests.

Listens on 127.0.0.1:$PORT. ALLOWED_ORIGINS (comma-separated, or `*`)
becomes `cors_allowed_origins` (unset: Flask-SocketIO's default, the app's own origin only);
REFUSE=1 makes the connect handler refuse every client, as an auth check would.
"""
import os

from flask import Flask
from flask_socketio import ConnectionRefusedError, SocketIO, emit

app = Flask(__name__)
allowed = os.environ.get("ALLOWED_ORIGINS")
if allowed and allowed != "*":
    allowed = allowed.split(",")
socketio = SocketIO(app, async_mode="threading", cors_allowed_origins=allowed)


@app.route("/")
def index():
    return "hello from Flask-SocketIO"


@socketio.on("connect")
def connect(auth):
    if os.environ.get("REFUSE") == "1":
        raise ConnectionRefusedError("not authorized")
    emit("hello", "world")


if __name__ == "__main__":
    socketio.run(
        app,
        host="127.0.0.1",
        port=int(os.environ["PORT"]),
        allow_unsafe_werkzeug=True,
    )
