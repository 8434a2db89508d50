"""The issue's yardstick, "a bare Flask JSON endpoint": parse a JSON body, answer JSON.
No kernel, no token, no Redis. Benchmarked beside the checks under the same gunicorn
settings and load, so the table shows what this machine gives the framework alone on
the day (its speed drifts by a third within an hour)."""

from __future__ import annotations

from flask import Flask, jsonify, request

app = Flask(__name__)


@app.post("/check")
def check():
    request.get_json()
    return jsonify(allowed=True, reason="granted")


@app.get("/healthz")
def healthz():
    return jsonify(status="ok")
