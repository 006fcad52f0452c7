"""Real local services on free ports: redis-server, Azurite and Prometheus, for tests, the demo and benchmarks. Each
listens on loopback unless given another address of this machine (the local node's, for its pods), keeps
its log in its work dir and is stopped by `stop()` (or the with-block)."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from pinned import cache_dir, versions
from ports import free_port, wait_for_port

AZURITE_ACCOUNT = "devstoreaccount1"
# Azurite's well-known development key (public, documented by Microsoft; not a secret).
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


class ServiceFailed(RuntimeError):
    pass


class Service:
    """A server process on a free port of `host`; without a work dir it gets a temporary one,
    removed again by `stop()`."""

    name = "service"

    def __init__(self, workdir: Path | None = None, host: str = "127.0.0.1") -> None:
        self.host = host
        self._temporary = tempfile.TemporaryDirectory(prefix=f"pixcrawler-{self.name}-") if workdir is None else None
        self.workdir = Path(workdir) if workdir is not None else Path(self._temporary.name)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.log = self.workdir / f"{self.name}.log"
        self.process: subprocess.Popen | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self, timeout: float = 60) -> "Service":
        with self.log.open("ab") as output:
            self.process = subprocess.Popen(self.command(), stdout=output, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL)
        try:
            wait_for_port(self.port, timeout, alive=lambda: self.process.poll() is None, host=self.host)
        except (RuntimeError, TimeoutError) as exc:
            log = self.log.read_text(errors="replace")
            self.stop()
            raise ServiceFailed(f"{self.name} did not start: {exc}\n{log}") from exc
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._temporary is not None:
            self._temporary.cleanup()

    def __enter__(self) -> "Service":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class RedisServer(Service):
    """redis-server without persistence (the operator must survive losing it: tests flush it). On an address
    other than loopback (the local node's bridge, for pods) protected mode would refuse every client."""

    name = "redis"

    def __init__(self, workdir: Path | None = None, password: str = "", host: str = "127.0.0.1") -> None:
        super().__init__(workdir, host)
        self.password = password

    def command(self) -> list[str]:
        binary = shutil.which("redis-server")
        if binary is None:
            raise ServiceFailed("redis-server is not installed: run `make system` (apt-get install redis-server)")
        return [binary, "--bind", self.host, "--port", str(self.port), "--save", "", "--appendonly", "no",
                "--dir", str(self.workdir), "--loglevel", "warning",
                *(["--protected-mode", "no"] if self.host != "127.0.0.1" else []),
                *(["--requirepass", self.password] if self.password else [])]

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"


def azurite_binary() -> Path:
    return cache_dir() / f"azurite-{versions()['AZURITE_VERSION']}" / "node_modules" / ".bin" / "azurite-blob"


class Azurite(Service):
    """The Azure Blob Storage emulator from npm (installed by hack/install-azurite.sh)."""

    name = "azurite"

    def command(self) -> list[str]:
        binary = azurite_binary()
        if not binary.exists():
            raise ServiceFailed(f"Azurite is not installed at {binary}: run `make azurite`")
        if shutil.which("node") is None:
            raise ServiceFailed("Azurite needs Node.js on PATH")
        return [str(binary), "--blobHost", self.host, "--blobPort", str(self.port), "--location",
                str(self.workdir), "--skipApiVersionCheck", "--loose", "--silent"]

    @property
    def blob_endpoint(self) -> str:
        return f"http://{self.host}:{self.port}/{AZURITE_ACCOUNT}"

    @property
    def connection_string(self) -> str:
        return (f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
                f"BlobEndpoint={self.blob_endpoint};")


def prometheus_binary(name: str = "prometheus") -> Path:
    """`prometheus` or `promtool` as hack/install-prometheus.sh unpacked them from Debian's package."""
    found = sorted(cache_dir().glob(f"prometheus-*/{name}"))
    if not found:
        raise ServiceFailed(f"{name} is not installed under {cache_dir()}/prometheus-*: run `make prometheus`")
    return found[-1]


class Prometheus(Service):
    """A Prometheus server with the given config (its `rule_files` included), its TSDB in the work dir, and
    the HTTP API calls the tests make."""

    name = "prometheus"

    def __init__(self, config: dict[str, Any], workdir: Path | None = None) -> None:
        super().__init__(workdir)
        self.config = config

    def command(self) -> list[str]:
        config_file = self.workdir / "prometheus.yml"
        config_file.write_text(json.dumps(self.config, indent=2))  # JSON is YAML
        return [str(prometheus_binary()), f"--config.file={config_file}",
                f"--storage.tsdb.path={self.workdir / 'data'}", f"--web.listen-address={self.host}:{self.port}",
                "--log.level=warn"]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 60) -> "Prometheus":
        """Returns once `/-/ready` answers 200: Prometheus listens while it still opens its TSDB and
        answers the API with a plain-text 503 until then."""
        deadline = time.monotonic() + timeout
        super().start(timeout)
        while not self._ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                log = self.log.read_text(errors="replace")
                self.stop()
                raise ServiceFailed(f"prometheus was not ready within {timeout} s\n{log}")
            time.sleep(0.1)
        return self

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=5) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def api(self, path: str, **params: Any) -> Any:
        """`/api/v1/<path>`'s `data`; a query Prometheus refuses raises ValueError with its error."""
        query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
        try:
            with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{query}", timeout=30) as response:
                body = json.load(response)
        except urllib.error.HTTPError as exc:
            text = exc.read().decode(errors="replace")
            try:
                body = json.loads(text)
            except ValueError:
                raise ValueError(f"HTTP {exc.code} from /api/v1/{path}: {text[:200]}") from exc
        if body.get("status") != "success":
            raise ValueError(f"{body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        return self.api("query", query=expr, time=at)["result"]

    def query_range(self, expr: str, start: float, end: float, step: float = 1.0) -> list[dict[str, Any]]:
        return self.api("query_range", query=expr, start=start, end=end, step=step)["result"]
