"""Run a real kube-apiserver v1.20.2 and etcd as local subprocesses for tests.

The API server is built once per machine by ``tests/cluster/build-apiserver.sh`` (``make apiserver``) and
cached outside the checkout. It serves real HTTPS, stores objects in etcd, enforces RBAC and validates and
prunes custom resources against their CRD schema. There is no controller-manager, scheduler, kubelet or
KServe controller: a test plays the controller by writing ``status`` itself.

Example:
    >>> with KubeApiServer(tmp_path) as cluster:  # doctest: +SKIP
    ...     cluster.install_kserve_crds(Path("../shared/kserve"))
    ...     api = kubernetes.client.CoreV1Api(cluster.api_client())
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

KUBE_VERSION = "v1.20.2"
PIPELINE_NAMESPACE = "kfp-tabular"
PIPELINE_SERVICE_ACCOUNT = "pipeline-runner"
ADMIN_USER = "admin"
READY_TIMEOUT_S = 60.0
STOP_GRACE_S = 10.0

KSERVE_GROUP = "serving.kserve.io"
KSERVE_CRD_FILES = (
    "serving.kserve.io_inferenceservices.yaml",
    "serving.kserve.io_servingruntimes.yaml",
    "serving.kserve.io_clusterservingruntimes.yaml",
)
KSERVE_SKLEARN_RUNTIME_FILE = "kserve-sklearnserver-runtime.yaml"

ExtraUser = tuple[str, str, Sequence[str] | str]


class BinariesMissingError(RuntimeError):
    """Raised when the kube-apiserver or etcd binary cannot be found."""


class ApiServerStartError(RuntimeError):
    """Raised when etcd or kube-apiserver does not start or does not become ready."""


def cache_dir() -> Path:
    """Returns the per-machine cache directory (``$KFP_TABULAR_CACHE`` or ``~/.cache/kfp-tabular``)."""
    env = os.environ.get("KFP_TABULAR_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "kfp-tabular"


def default_apiserver_path() -> Path:
    """Returns where ``build-apiserver.sh`` installs the kube-apiserver binary."""
    return cache_dir() / f"kube-apiserver-{KUBE_VERSION}" / "kube-apiserver"


def find_binaries() -> tuple[Path, Path]:
    """Locates the kube-apiserver and etcd binaries.

    The API server comes from ``$KUBE_APISERVER_BIN``, else from the cache path of ``build-apiserver.sh``;
    etcd from ``$ETCD_BIN``, else from ``PATH`` (Debian's etcd-server package).

    Returns:
        The paths ``(kube_apiserver, etcd)``.

    Raises:
        BinariesMissingError: If either binary is missing or not executable.
    """
    hint = "run `make apiserver` (tests/cluster/build-apiserver.sh) once on this machine"
    env_bin = os.environ.get("KUBE_APISERVER_BIN")
    apiserver = Path(env_bin) if env_bin else default_apiserver_path()
    if not (apiserver.is_file() and os.access(apiserver, os.X_OK)):
        source = "$KUBE_APISERVER_BIN" if env_bin else "the build cache"
        raise BinariesMissingError(f"kube-apiserver not found at {apiserver} (from {source}): {hint}")
    env_etcd = os.environ.get("ETCD_BIN")
    etcd_str = env_etcd or shutil.which("etcd")
    if not etcd_str or not (Path(etcd_str).is_file() and os.access(etcd_str, os.X_OK)):
        raise BinariesMissingError(f"etcd not found ({env_etcd or 'not on PATH'}; Debian package etcd-server): {hint}")
    return apiserver, Path(etcd_str)


def free_port() -> int:
    """Returns a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def strip_empty_defaults(node: Any) -> int:
    """Removes, in place, every ``default`` key whose value is the empty string.

    The 1.20 API server rejects the ``default: ""`` entries of KServe's CRDs; removing exactly those keys
    makes the CRDs install and leaves the rest of the schema intact.

    Args:
        node: A parsed YAML/JSON document (dicts, lists and scalars).

    Returns:
        How many keys were removed.
    """
    removed = 0
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if item.get("default", None) == "" and isinstance(item["default"], str):
                del item["default"]
                removed += 1
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return removed


def load_yaml(path: Path) -> Any:
    """Parses one YAML document, with libyaml when available (the InferenceService CRD is ~2 MB)."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with path.open("rb") as handle:
        return yaml.load(handle, Loader=loader)  # noqa: S506 - a safe loader is used


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"<cannot read {path}: {exc}>"
    return "\n".join(text.splitlines()[-lines:])


def _stop_process(proc: subprocess.Popen | None, grace_s: float = STOP_GRACE_S) -> None:
    """Sends SIGTERM to one process by PID, then SIGKILL if it is still alive after ``grace_s``."""
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=grace_s)


class KubeApiServer:
    """A kube-apiserver v1.20.2 backed by its own etcd, for tests; use it as a context manager.

    Authentication is by static bearer tokens: ``admin`` (group ``system:masters``), the service-account
    identity ``system:serviceaccount:kfp-tabular:pipeline-runner`` (no RBAC granted), and any
    ``extra_users`` given to the constructor. Authorization is RBAC.

    Attributes:
        workdir: Directory holding etcd's data, certificates, keys, token file, kubeconfigs and logs.
        server: The HTTPS URL of the API server, set by :meth:`start`.
        admin_token: Bearer token of the ``admin`` user (``system:masters``).
        pipeline_runner_token: Bearer token of ``system:serviceaccount:kfp-tabular:pipeline-runner``.
        removed_empty_defaults: Per CRD file, how many ``default: ""`` keys :meth:`install_kserve_crds` removed.
    """

    def __init__(self, workdir: Path, extra_users: Iterable[ExtraUser] = ()) -> None:
        """Prepares, without starting, a server that keeps its state under ``workdir``.

        Args:
            workdir: Directory for data, keys and logs; created if missing.
            extra_users: Additional ``(token, user, groups)`` identities for the token file; ``groups`` is a
                sequence of group names or a comma-separated string. Tokens cannot be added after start.
        """
        self.workdir = Path(workdir)
        self.server = ""
        self.admin_token = secrets.token_hex(16)
        self.pipeline_runner_token = secrets.token_hex(16)
        self.removed_empty_defaults: dict[str, int] = {}
        self._users: list[tuple[str, str, tuple[str, ...]]] = [
            (self.admin_token, ADMIN_USER, ("system:masters",)),
            (
                self.pipeline_runner_token,
                f"system:serviceaccount:{PIPELINE_NAMESPACE}:{PIPELINE_SERVICE_ACCOUNT}",
                ("system:serviceaccounts", f"system:serviceaccounts:{PIPELINE_NAMESPACE}", "system:authenticated"),
            ),
        ]
        for token, user, groups in extra_users:
            group_list = tuple(g.strip() for g in groups.split(",")) if isinstance(groups, str) else tuple(groups)
            self._users.append((token, user, tuple(g for g in group_list if g)))
        self._check_users()
        self._etcd: subprocess.Popen | None = None
        self._apiserver: subprocess.Popen | None = None
        self._log_handles: list[Any] = []
        self._atexit_registered = False

    # ----------------------------------------------------------------------------------------------------
    # Lifecycle
    # ----------------------------------------------------------------------------------------------------

    def __enter__(self) -> KubeApiServer:
        """Starts the server; stops whatever was started if starting fails."""
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Stops the server."""
        self.stop()

    @property
    def etcd_log(self) -> Path:
        """Path of etcd's log file."""
        return self.workdir / "etcd.log"

    @property
    def apiserver_log(self) -> Path:
        """Path of kube-apiserver's log file."""
        return self.workdir / "kube-apiserver.log"

    @property
    def ca_cert_path(self) -> Path:
        """The self-signed serving certificate chain the API server generated (usable as CA bundle)."""
        return self.workdir / "certs" / "apiserver.crt"

    def start(self) -> None:
        """Starts etcd and kube-apiserver on free loopback ports and waits until ``/readyz`` answers ok.

        Raises:
            BinariesMissingError: If a binary is missing.
            ApiServerStartError: If a process exits early or the server is not ready within 60 s.
            RuntimeError: If the server was already started.
        """
        if self._apiserver is not None or self._etcd is not None:
            raise RuntimeError("KubeApiServer already started")
        apiserver_bin, etcd_bin = find_binaries()
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "certs").mkdir(exist_ok=True)
        self._write_service_account_keys()
        self._write_token_file()
        if not self._atexit_registered:
            atexit.register(self.stop)
            self._atexit_registered = True
        etcd_url = self._start_etcd(etcd_bin)
        self._start_apiserver(apiserver_bin, etcd_url)

    def stop(self) -> None:
        """Stops kube-apiserver, then etcd (SIGTERM, SIGKILL after 10 s); safe to call more than once."""
        _stop_process(self._apiserver)
        _stop_process(self._etcd)
        for handle in self._log_handles:
            handle.close()
        self._log_handles.clear()

    @property
    def running(self) -> bool:
        """Whether both processes are alive."""
        return all(p is not None and p.poll() is None for p in (self._etcd, self._apiserver))

    def _spawn(self, argv: list[str], log_path: Path) -> subprocess.Popen:
        handle = log_path.open("ab")
        self._log_handles.append(handle)
        return subprocess.Popen(  # noqa: S603 - fixed argv of trusted binaries
            argv,
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
            start_new_session=True,
        )

    def _start_etcd(self, etcd_bin: Path, attempts: int = 3) -> str:
        data_dir = self.workdir / "etcd-data"
        for _ in range(attempts):
            client_port, peer_port = free_port(), free_port()
            client_url, peer_url = f"http://127.0.0.1:{client_port}", f"http://127.0.0.1:{peer_port}"
            argv = [
                str(etcd_bin),
                "--name=kfp-tabular-test",
                f"--data-dir={data_dir}",
                f"--listen-client-urls={client_url}",
                f"--advertise-client-urls={client_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=kfp-tabular-test={peer_url}",
                "--initial-cluster-state=new",
            ]
            self._etcd = self._spawn(argv, self.etcd_log)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and self._etcd.poll() is None:
                if self._etcd_healthy(client_url):
                    return client_url
                time.sleep(0.2)
            if self._etcd.poll() is None:
                break  # Alive but never healthy: not a port race, report it.
            if "address already in use" not in _tail(self.etcd_log, 20):
                break
            shutil.rmtree(data_dir, ignore_errors=True)
        _stop_process(self._etcd)
        raise ApiServerStartError(
            f"etcd did not become healthy; last lines of {self.etcd_log}:\n{_tail(self.etcd_log)}"
        )

    @staticmethod
    def _etcd_healthy(client_url: str) -> bool:
        try:
            with urllib.request.urlopen(f"{client_url}/health", timeout=2) as resp:  # noqa: S310 - loopback URL
                return json.load(resp).get("health") == "true"
        except (OSError, ValueError):
            return False

    def _start_apiserver(self, apiserver_bin: Path, etcd_url: str, attempts: int = 3) -> None:
        for _ in range(attempts):
            port = free_port()
            argv = [
                str(apiserver_bin),
                f"--etcd-servers={etcd_url}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={port}",
                "--insecure-port=0",
                f"--cert-dir={self.workdir / 'certs'}",
                "--service-cluster-ip-range=10.0.0.0/24",
                "--authorization-mode=RBAC",
                f"--token-auth-file={self.workdir / 'tokens.csv'}",
                "--service-account-issuer=https://kubernetes.default.svc",
                "--api-audiences=https://kubernetes.default.svc",
                f"--service-account-key-file={self.workdir / 'sa.pub'}",
                f"--service-account-signing-key-file={self.workdir / 'sa.key'}",
                "--disable-admission-plugins=ServiceAccount",
                "--profiling=false",
            ]
            self.server = f"https://127.0.0.1:{port}"
            self._apiserver = self._spawn(argv, self.apiserver_log)
            try:
                self._wait_ready()
                return
            except ApiServerStartError:
                died = self._apiserver.poll() is not None
                if not (died and "address already in use" in _tail(self.apiserver_log, 20)):
                    raise
        raise ApiServerStartError(f"kube-apiserver could not bind a port; see {self.apiserver_log}")

    def _wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        request = urllib.request.Request(  # noqa: S310 - loopback URL
            f"{self.server}/readyz", headers={"Authorization": f"Bearer {self.admin_token}"}
        )
        deadline = time.monotonic() + timeout_s
        last_error = "no answer yet"
        while time.monotonic() < deadline:
            assert self._apiserver is not None
            if self._apiserver.poll() is not None:
                _stop_process(self._apiserver)
                raise ApiServerStartError(
                    f"kube-apiserver exited with code {self._apiserver.returncode} before becoming ready; "
                    f"last lines of {self.apiserver_log}:\n{_tail(self.apiserver_log)}"
                )
            try:
                with urllib.request.urlopen(request, timeout=5, context=context) as resp:  # noqa: S310
                    body = resp.read().decode(errors="replace").strip()
                    if resp.status == 200 and body == "ok":
                        return
                    last_error = f"HTTP {resp.status}: {body[:200]}"
            except urllib.error.HTTPError as exc:
                last_error = f"HTTP {exc.code}: {exc.read().decode(errors='replace')[-500:]}"
            except OSError as exc:
                last_error = str(exc)
            time.sleep(0.25)
        _stop_process(self._apiserver)
        raise ApiServerStartError(
            f"kube-apiserver at {self.server} not ready after {timeout_s:.0f} s (last /readyz: {last_error}); "
            f"last lines of {self.apiserver_log}:\n{_tail(self.apiserver_log)}"
        )

    # ----------------------------------------------------------------------------------------------------
    # Credentials
    # ----------------------------------------------------------------------------------------------------

    def _check_users(self) -> None:
        tokens = [u[0] for u in self._users]
        if len(set(tokens)) != len(tokens):
            raise ValueError("tokens in extra_users must be unique")
        for token, user, groups in self._users:
            for field in (token, user, *groups):
                if not field or any(c in field for c in ',"\n\r'):
                    raise ValueError(f'invalid token-file field {field!r}: empty or containing , " or newline')

    def _write_token_file(self) -> None:
        lines = []
        for token, user, groups in self._users:
            uid = str(uuid.uuid5(uuid.NAMESPACE_URL, user))
            lines.append(f'{token},{user},{uid},"{",".join(groups)}"' if groups else f"{token},{user},{uid}")
        path = self.workdir / "tokens.csv"
        path.write_text("\n".join(lines) + "\n")
        path.chmod(0o600)

    def _write_service_account_keys(self) -> None:
        key, pub = self.workdir / "sa.key", self.workdir / "sa.pub"
        if key.exists() and pub.exists():
            return
        openssl = shutil.which("openssl")
        if openssl:
            subprocess.run(  # noqa: S603 - fixed argv
                [openssl, "genrsa", "-out", str(key), "2048"], check=True, capture_output=True
            )
            subprocess.run(  # noqa: S603 - fixed argv
                [openssl, "rsa", "-in", str(key), "-pubout", "-out", str(pub)], check=True, capture_output=True
            )
        else:
            try:
                from cryptography.hazmat.primitives import serialization
                from cryptography.hazmat.primitives.asymmetric import rsa
            except ImportError as exc:
                raise BinariesMissingError(
                    "neither the openssl CLI nor the cryptography package is available to make the "
                    "service-account signing key"
                ) from exc
            private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            key.write_bytes(
                private.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.TraditionalOpenSSL,
                    serialization.NoEncryption(),
                )
            )
            pub.write_bytes(
                private.public_key().public_bytes(
                    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                )
            )
        key.chmod(0o600)

    def token_for_user(self, user: str) -> str:
        """Returns the bearer token configured for ``user``.

        Raises:
            KeyError: If no token was configured for that user.
        """
        for token, name, _ in self._users:
            if name == user:
                return token
        raise KeyError(f"no token configured for user {user!r}; pass it in extra_users")

    def service_account_token(self, namespace: str = PIPELINE_NAMESPACE, name: str = PIPELINE_SERVICE_ACCOUNT) -> str:
        """Returns the static token of ``system:serviceaccount:<namespace>:<name>``.

        Only configured identities have a token: ``kfp-tabular/pipeline-runner`` and any service-account
        user passed in ``extra_users``.

        Raises:
            KeyError: If that service-account identity was not configured.
        """
        return self.token_for_user(f"system:serviceaccount:{namespace}:{name}")

    def kubeconfig_path(
        self, token: str | None = None, user_name: str = ADMIN_USER, namespace: str = "default"
    ) -> Path:
        """Writes a kubeconfig for this server and returns its path.

        Args:
            token: Bearer token; defaults to the admin token.
            user_name: Name of the user entry (also used in the file name).
            namespace: Default namespace of the context.

        Returns:
            Path of a kubeconfig (``insecure-skip-tls-verify: true``) usable by kubectl and the Python client.
        """
        import yaml

        if not self.server:
            raise RuntimeError("KubeApiServer not started")
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in user_name)
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": "kfp-tabular-test", "cluster": {"server": self.server, "insecure-skip-tls-verify": True}}
            ],
            "users": [{"name": user_name, "user": {"token": token or self.admin_token}}],
            "contexts": [
                {
                    "name": f"{user_name}@kfp-tabular-test",
                    "context": {"cluster": "kfp-tabular-test", "user": user_name, "namespace": namespace},
                }
            ],
            "current-context": f"{user_name}@kfp-tabular-test",
            "preferences": {},
        }
        path = self.workdir / f"kubeconfig-{safe}-{namespace}.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        path.chmod(0o600)
        return path

    def api_client(self, token: str | None = None) -> Any:
        """Returns a ``kubernetes.client.ApiClient`` authenticated with ``token`` (default: admin).

        TLS is verified against the certificate the API server generated for itself (127.0.0.1).
        """
        from kubernetes import client

        if not self.server:
            raise RuntimeError("KubeApiServer not started")
        configuration = client.Configuration()
        configuration.host = self.server
        configuration.api_key = {"authorization": f"Bearer {token or self.admin_token}"}
        if self.ca_cert_path.is_file():
            configuration.ssl_ca_cert = str(self.ca_cert_path)
            configuration.verify_ssl = True
        else:
            configuration.verify_ssl = False
        return client.ApiClient(configuration)

    # ----------------------------------------------------------------------------------------------------
    # Helpers for tests
    # ----------------------------------------------------------------------------------------------------

    def create_namespace(self, prefix: str = "test") -> str:
        """Creates a namespace with a unique name and returns that name.

        There is no controller-manager, so deleted namespaces never finish terminating: give every test its
        own namespace instead of deleting and re-creating one.
        """
        from kubernetes import client

        name = f"{prefix}-{secrets.token_hex(4)}"
        with self.api_client() as api:
            client.CoreV1Api(api).create_namespace({"metadata": {"name": name}})
        return name

    def ensure_namespace(self, name: str) -> str:
        """Creates namespace ``name`` unless it exists, and returns ``name``."""
        from kubernetes import client

        with self.api_client() as api:
            try:
                client.CoreV1Api(api).create_namespace({"metadata": {"name": name}})
            except client.ApiException as exc:
                if exc.status != 409:
                    raise
        return name

    def install_kserve_crds(self, shared_kserve_dir: Path, timeout_s: float = 60.0) -> None:
        """Installs KServe's CRDs and the stock ``kserve-sklearnserver`` ClusterServingRuntime.

        The CRDs are read from ``shared_kserve_dir`` unchanged on disk; the ``default: ""`` keys the 1.20
        server rejects are removed in memory (counts in :attr:`removed_empty_defaults`). Idempotent: objects
        that already exist are left as they are.

        Args:
            shared_kserve_dir: Directory holding KServe's CRD YAML files (``../shared/kserve``).
            timeout_s: How long to wait for each CRD to report ``Established``.

        Raises:
            FileNotFoundError: If a CRD or the runtime file is missing.
            TimeoutError: If a CRD does not become Established in time.
        """
        from kubernetes import client

        shared_kserve_dir = Path(shared_kserve_dir)
        with self.api_client() as api:
            ext = client.ApiextensionsV1Api(api)
            names = []
            for file_name in KSERVE_CRD_FILES:
                crd = load_yaml(shared_kserve_dir / file_name)
                self.removed_empty_defaults[file_name] = strip_empty_defaults(crd)
                names.append(crd["metadata"]["name"])
                try:
                    ext.create_custom_resource_definition(body=crd, _preload_content=False)
                except client.ApiException as exc:
                    if exc.status != 409:
                        raise
            for name in names:
                self._wait_crd_established(ext, name, timeout_s)

            runtime = load_yaml(shared_kserve_dir / KSERVE_SKLEARN_RUNTIME_FILE)
            group, version = runtime["apiVersion"].split("/")
            try:
                client.CustomObjectsApi(api).create_cluster_custom_object(
                    group, version, "clusterservingruntimes", runtime
                )
            except client.ApiException as exc:
                if exc.status != 409:
                    raise

    @staticmethod
    def _wait_crd_established(ext: Any, name: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        conditions: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            resp = ext.read_custom_resource_definition(name, _preload_content=False)
            conditions = json.loads(resp.data).get("status", {}).get("conditions") or []
            if any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions):
                return
            time.sleep(0.2)
        raise TimeoutError(f"CRD {name} not Established after {timeout_s:.0f} s; conditions: {conditions}")
