"""A private Mosquitto broker for one test: own port, password file, ACL file and persistence folder."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.ports import accepts_connections, free_port, wait_until

HOW_TO_INSTALL = "install it with `make setup` (or `apt-get install mosquitto`)"


def find_binary(name: str) -> str:
    """The path of a Mosquitto program; fails the test, saying how to install it, if there is none."""
    path = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.access(p, os.X_OK)), None
    )
    if path is None:
        raise RuntimeError(f"`{name}` not found: {HOW_TO_INSTALL}")
    return path


@dataclass
class MosquittoBroker:
    """A Mosquitto process started by a test; `stop`, `kill` and `start` again keep port and data."""

    directory: Path
    users: dict[str, str]
    acl: str
    host: str = "127.0.0.1"
    port: int = field(default_factory=free_port)
    extra_config: str = ""
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    @property
    def log_file(self) -> Path:
        return self.directory / "mosquitto.log"

    def write_files(self) -> Path:
        """Write the password, ACL and config files; return the config's path."""
        self.directory.mkdir(parents=True, exist_ok=True)
        data = self.directory / "data"
        data.mkdir(exist_ok=True)
        passwd = self.directory / "passwd"
        passwd.write_text("")
        passwd.chmod(0o600)
        tool = find_binary("mosquitto_passwd")
        for user, password in self.users.items():
            subprocess.run([tool, "-b", str(passwd), user, password], check=True, capture_output=True)
        acl = self.directory / "acl"
        acl.write_text(textwrap.dedent(self.acl).strip() + "\n")
        acl.chmod(0o600)
        config = self.directory / "mosquitto.conf"
        config.write_text(
            "\n".join(
                [
                    # As root, Mosquitto would switch to user `mosquitto`, who cannot read these files.
                    "user root" if os.geteuid() == 0 else "",
                    "per_listener_settings false",
                    f"listener {self.port} {self.host}",
                    "allow_anonymous false",
                    f"password_file {passwd}",
                    f"acl_file {acl}",
                    "persistence true",
                    f"persistence_location {data}/",
                    f"log_dest file {self.log_file}",
                    "log_type error",
                    "log_type warning",
                    "log_type notice",
                    "log_type information",
                    self.extra_config,
                    "",
                ]
            )
        )
        return config

    def start(self, timeout: float = 10.0) -> None:
        """Start the broker and wait until it accepts connections."""
        config = self.write_files()
        self.process = subprocess.Popen(
            [find_binary("mosquitto"), "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        process = self.process

        def ready() -> bool:
            if process.poll() is not None:
                err = process.stderr.read().decode(errors="replace") if process.stderr else ""
                log = self.log_file.read_text(errors="replace") if self.log_file.exists() else ""
                raise RuntimeError(f"mosquitto exited with {process.returncode}: {err}{log}")
            return accepts_connections(self.host, self.port)

        wait_until(ready, timeout, f"mosquitto on {self.host}:{self.port}")

    def stop(self) -> None:
        """Stop the broker cleanly (it writes its persistence file)."""
        self._end(signal.SIGTERM)

    def kill(self) -> None:
        """Kill the broker with SIGKILL, as a crash would."""
        self._end(signal.SIGKILL)

    def _end(self, sig: signal.Signals) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(sig)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stderr:
            self.process.stderr.close()
