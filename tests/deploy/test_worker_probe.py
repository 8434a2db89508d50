"""The worker containers' exec probe: fresh heartbeat → 0, stale or missing → 1."""

from __future__ import annotations

import os
import time


def test_fresh_heartbeat_passes(worker_probe, tmp_path):
    beat = tmp_path / "beat"
    beat.touch()
    assert worker_probe.main(["--file", str(beat), "--max-age", "60"]) == 0


def test_stale_heartbeat_fails(worker_probe, tmp_path, capsys):
    beat = tmp_path / "beat"
    beat.touch()
    old = time.time() - 120
    os.utime(beat, (old, old))
    assert worker_probe.main(["--file", str(beat), "--max-age", "60"]) == 1
    assert "old" in capsys.readouterr().err


def test_missing_heartbeat_fails(worker_probe, tmp_path, capsys):
    assert worker_probe.main(["--file", str(tmp_path / "none")]) == 1
    assert "no heartbeat file" in capsys.readouterr().err


def test_file_comes_from_heartbeat_file_env(worker_probe, tmp_path, monkeypatch):
    beat = tmp_path / "from-env"
    beat.touch()
    monkeypatch.setenv("HEARTBEAT_FILE", str(beat))
    assert worker_probe.main([]) == 0
