"""A real SMTP server on 127.0.0.1 for measurements: mail sent over the wire, counted.

`manage.py compare` (and so `make bench` and the live comparison) sends the write
lessons' mail to this server through Django's SMTP backend: a naive variant that
opens one SMTP connection per email pays each handshake in its measured time, as it
would against a real relay (compose's Mailpit, production's provider). The server is
aiosmtpd in a process of its own (`python -m lab.smtp_sink`), so its work never
competes with the measured code for this process's interpreter; it appends one line
per accepted message to a file, which the measurement counts.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path


class SmtpSink:
    """`with SmtpSink() as sink:` mail goes to it; `sink.received()` counts messages."""

    def __init__(self) -> None:
        self.directory = tempfile.TemporaryDirectory(prefix="weave-smtp-")
        self.log = Path(self.directory.name) / "received"
        self.process: subprocess.Popen | None = None
        self.settings = None

    def __enter__(self) -> SmtpSink:
        from django.test.utils import override_settings

        from config import mailers

        self.log.touch()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "lab.smtp_sink", str(self.log)],
            cwd=Path(__file__).resolve().parent.parent,
            stdout=subprocess.PIPE,
            text=True,
        )
        port = int(self.process.stdout.readline())  # printed once the server listens
        smtp = mailers.mailer(mailers.SMTP, host="127.0.0.1", port=port, timeout=10)
        self.settings = override_settings(MAILERS={"default": smtp})
        self.settings.enable()
        return self

    def received(self) -> int:
        with self.log.open() as lines:
            return sum(1 for _ in lines)

    def __exit__(self, *exc_info) -> None:
        if self.settings is not None:
            self.settings.disable()
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.directory.cleanup()


class CountingHandler:
    """aiosmtpd handler: one line per accepted message, written before the 250 reply."""

    def __init__(self, log: Path) -> None:
        self.log = log

    async def handle_DATA(self, server, session, envelope) -> str:
        with self.log.open("a") as lines:
            lines.write(f"{len(envelope.rcpt_tos)}\n")
        return "250 OK"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def serve(log: Path) -> None:
    from aiosmtpd.controller import Controller

    controller = Controller(CountingHandler(log), hostname="127.0.0.1", port=free_port())
    controller.start()
    print(controller.port, flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:
        controller.stop()


if __name__ == "__main__":
    serve(Path(sys.argv[1]))
