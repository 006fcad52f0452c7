"""A fast static file server on loopback for the benchmark: Debian's nginx with a throwaway config.

Why nginx and not Python's http.server: the clients under test share this machine's two cores
with the server, so the server must cost next to nothing per request. One nginx worker serves
static files with sendfile and keep-alive at tens of thousands of requests a second, far above
what either client reaches, and it is a real, widely deployed web server (the images the worker
meets in the wild come from servers like it). It is installed from Debian on demand.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from localservices import Service

CONFIG = """\
worker_processes 1;
daemon off;
{user}
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    open_file_cache max=10000 inactive=60s;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    types {{ image/jpeg jpg; text/plain txt; }}
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port};
        root {root};
    }}
}}
"""


def nginx_binary() -> str:
    """The nginx binary, installed from Debian's packages when missing (needs root, like `make test`'s redis)."""
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if found:
        return found
    if os.geteuid() != 0:
        raise RuntimeError("nginx is missing; install it: sudo apt-get install -y nginx")
    print("bench: installing nginx from Debian's packages", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "nginx"], check=True, env=env,
                   stdout=subprocess.DEVNULL)
    return shutil.which("nginx") or "/usr/sbin/nginx"


class StaticServer(Service):
    """`with StaticServer(root) as server:` serves `root` at `server.base` until the block ends."""

    name = "nginx"

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = root

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        # As root, nginx's workers would otherwise drop to `nobody`, who cannot read a cache under /root.
        user = "user root root;" if os.geteuid() == 0 else ""
        config = self.workdir / "nginx.conf"
        config.write_text(CONFIG.format(user=user, tmp=self.workdir, port=self.port, root=self.root.resolve()))
        return [nginx_binary(), "-p", str(self.workdir), "-c", str(config), "-e", str(self.log)]
