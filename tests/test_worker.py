import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_qcluster_starts_on_default_settings_without_warnings(tmp_path):
    env = {**os.environ, "DARKROOM_DATA_DIR": str(tmp_path)}
    env.pop("DATABASE_URL", None)
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
    log = tmp_path / "qcluster.log"
    with log.open("w") as out:
        worker = subprocess.Popen(
            [*manage, "qcluster"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )
        try:
            deadline = time.monotonic() + 30
            while "running" not in log.read_text() and time.monotonic() < deadline:
                time.sleep(0.2)
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=30)
    text = log.read_text()
    assert "running" in text, text
    assert "WARNING" not in text, text
    assert "retry" not in text.lower(), text
