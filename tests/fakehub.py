"""A loopback Hugging Face Hub for tests: the HTTP surface huggingface_hub uses to push and pull model repos.

Binds 127.0.0.1 only, keeps repos in memory, and shuts itself down after `lifetime` seconds even if a test forgets
to stop it. Routes (ecosystem.md §3.5):

    POST /api/repos/create                              -> {"url"}; 409 when the repo exists
    POST /api/validate-yaml                             -> parses the README front matter like the hub would
    POST /api/models/{org}/{name}/preupload/{rev}       -> every file "regular" (inline base64: no Xet, no LFS)
    POST /api/models/{org}/{name}/commit/{rev}          -> NDJSON header/file/deletedFile -> {"commitUrl", "commitOid"}
    POST /api/models/{org}/{name}/tag/{rev}             -> a tag pointing at that revision's commit
    HEAD/GET /{org}/{name}/resolve/{rev}/{path}         -> bytes + X-Repo-Commit + ETag; 404 with X-Error-Code
    GET  /api/models/{org}/{name}/revision/{rev}        -> {"sha", "siblings"}
    GET  /api/models/{org}/{name}/tree/{rev}            -> [{"type": "file", "path", "size", "oid"}]

`requests` counts the requests per route kind, so tests can prove that a load made no network call.
"""
from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlparse

REPO = r"(?P<repo>[^/]+/[^/]+)"
REV = r"(?P<rev>[^/]+)"


class Repo:
    """One model repo: commits (sha -> {path: bytes}), branches and tags (name -> sha)."""

    def __init__(self) -> None:
        self.commits: dict[str, dict[str, bytes]] = {}
        empty = hashlib.sha1(b"initial").hexdigest()
        self.commits[empty] = {".gitattributes": b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"}
        self.refs: dict[str, str] = {"main": empty}

    def resolve(self, rev: str) -> str | None:
        if rev in self.refs:
            return self.refs[rev]
        if rev in self.commits:
            return rev
        return None


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class FakeHub:
    """`with FakeHub() as hub:` -> `hub.endpoint` is ``http://127.0.0.1:PORT``."""

    def __init__(self, lifetime: float = 300.0) -> None:
        self.repos: dict[str, Repo] = {}
        self.requests: Counter = Counter()
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self.server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._timer = threading.Timer(lifetime, self.stop)  # stops by itself
        self._timer.daemon = True
        self._stopped = False

    def start(self) -> "FakeHub":
        self._thread.start()
        self._timer.start()
        return self

    def stop(self) -> None:
        if not self._stopped:
            self._stopped = True
            self._timer.cancel()
            self.server.shutdown()
            self.server.server_close()

    def __enter__(self) -> "FakeHub":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---- repo operations, also used by the handler ----
    def commit(self, repo_id: str, rev: str, files: dict[str, bytes | None], message: str = "") -> str:
        """Apply `files` (None deletes) on top of branch `rev`; returns the new commit sha."""
        repo = self.repos[repo_id]
        parent = repo.resolve(rev)
        tree = dict(repo.commits[parent])
        for path, data in files.items():
            if data is None:
                tree.pop(path, None)
            else:
                tree[path] = data
        sha = hashlib.sha1(json.dumps([parent, message, sorted((p, git_blob_sha1(d)) for p, d in tree.items())])
                           .encode()).hexdigest()
        repo.commits[sha] = tree
        repo.refs[rev] = sha
        return sha


def _make_handler(hub: FakeHub):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # quiet
            pass

        # ---- helpers ----
        def _send(self, status: int, body: bytes = b"", headers: dict | None = None, head: bool = False) -> None:
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def _json(self, status: int, obj, headers: dict | None = None) -> None:
            self._send(status, json.dumps(obj).encode(), {"Content-Type": "application/json", **(headers or {})})

        def _error(self, status: int, code: str, message: str, head: bool = False) -> None:
            self._send(status, json.dumps({"error": message}).encode(),
                       {"Content-Type": "application/json", "X-Error-Code": code, "X-Error-Message": message},
                       head=head)

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _route(self, pattern: str):
            return re.fullmatch(pattern, unquote(urlparse(self.path).path))

        def _repo(self, match, head: bool = False):
            repo = hub.repos.get(match["repo"])
            if repo is None:
                self._error(404, "RepoNotFound", f"Repository {match['repo']} not found", head)
            return repo

        # ---- verbs ----
        def do_POST(self) -> None:
            with hub.lock:
                self._post()

        def do_GET(self) -> None:
            with hub.lock:
                self._get(head=False)

        def do_HEAD(self) -> None:
            with hub.lock:
                self._get(head=True)

        def _post(self) -> None:
            body = self._body()
            if m := self._route(r"/api/repos/create"):
                hub.requests["create"] += 1
                req = json.loads(body)
                repo_id = f"{req.get('organization') or 'user'}/{req['name']}"
                if repo_id in hub.repos:  # the hub's 409 also carries the url (create_repo(exist_ok=True) reads it)
                    return self._json(409, {"error": "You already created this model repo",
                                            "url": f"{hub.endpoint}/{repo_id}"}, {"X-Error-Code": "RepoExists"})
                hub.repos[repo_id] = Repo()
                return self._json(200, {"url": f"{hub.endpoint}/{repo_id}", "name": repo_id})
            if m := self._route(r"/api/validate-yaml"):
                hub.requests["validate"] += 1
                return self._json(200, _validate_yaml(json.loads(body).get("content", "")))
            if m := self._route(rf"/api/models/{REPO}/preupload/{REV}"):
                hub.requests["preupload"] += 1
                if self._repo(m) is None:
                    return None
                files = json.loads(body).get("files", [])
                return self._json(200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                                  for f in files]})
            if m := self._route(rf"/api/models/{REPO}/commit/{REV}"):
                hub.requests["commit"] += 1
                repo = self._repo(m)
                if repo is None:
                    return None
                if m["rev"] not in repo.refs:  # commits go on a branch
                    return self._error(404, "RevisionNotFound", f"Invalid rev id: {m['rev']}")
                files: dict[str, bytes | None] = {}
                message = ""
                for line in body.decode().splitlines():
                    if not line.strip():
                        continue
                    item = json.loads(line)
                    key, value = item["key"], item["value"]
                    if key == "header":
                        message = value.get("summary", "")
                    elif key == "file":
                        files[value["path"]] = base64.b64decode(value["content"])
                    elif key == "deletedFile":
                        files[value["path"]] = None
                    else:  # lfsFile / deletedFolder: this fake answers "regular" so they never come
                        return self._error(400, "BadRequest", f"unsupported commit operation {key!r}")
                sha = hub.commit(m["repo"], m["rev"], files, message)
                return self._json(200, {"commitUrl": f"{hub.endpoint}/{m['repo']}/commit/{sha}", "commitOid": sha,
                                        "pullRequestUrl": None})
            if m := self._route(rf"/api/models/{REPO}/tag/{REV}"):
                hub.requests["tag"] += 1
                repo = self._repo(m)
                if repo is None:
                    return None
                sha = repo.resolve(m["rev"])
                if sha is None:
                    return self._error(404, "RevisionNotFound", f"Invalid rev id: {m['rev']}")
                repo.refs[json.loads(body)["tag"]] = sha
                return self._json(200, {"name": json.loads(body)["tag"]})
            return self._error(404, "NotFound", f"no route POST {self.path}")

        def _get(self, head: bool) -> None:
            if m := self._route(rf"/{REPO}/resolve/{REV}/(?P<path>.+)"):
                hub.requests["resolve"] += 1
                repo = self._repo(m, head)
                if repo is None:
                    return None
                sha = repo.resolve(m["rev"])
                if sha is None:
                    return self._error(404, "RevisionNotFound", f"Invalid rev id: {m['rev']}", head)
                data = repo.commits[sha].get(m["path"])
                if data is None:
                    return self._send(404, b"Entry not found", {"X-Error-Code": "EntryNotFound",
                                                                "X-Error-Message": "Entry not found",
                                                                "X-Repo-Commit": sha}, head)
                return self._send(200, data, {"X-Repo-Commit": sha, "ETag": f'"{hashlib.sha256(data).hexdigest()}"',
                                              "Content-Type": "application/octet-stream"}, head)
            if m := self._route(rf"/api/models/{REPO}/revision/{REV}"):
                hub.requests["revision"] += 1
                repo = self._repo(m, head)
                if repo is None:
                    return None
                sha = repo.resolve(m["rev"])
                if sha is None:
                    return self._error(404, "RevisionNotFound", f"Invalid rev id: {m['rev']}", head)
                return self._json(200, {"id": m["repo"], "sha": sha,
                                        "siblings": [{"rfilename": p} for p in sorted(repo.commits[sha])]})
            if m := self._route(rf"/api/models/{REPO}/tree/{REV}(?:/.*)?"):
                hub.requests["tree"] += 1
                repo = self._repo(m, head)
                if repo is None:
                    return None
                sha = repo.resolve(m["rev"])
                if sha is None:
                    return self._error(404, "RevisionNotFound", f"Invalid rev id: {m['rev']}", head)
                return self._json(200, [{"type": "file", "path": p, "size": len(d), "oid": git_blob_sha1(d)}
                                        for p, d in sorted(repo.commits[sha].items())])
            return self._error(404, "NotFound", f"no route GET {self.path}", head)

    return Handler


def _validate_yaml(content: str) -> dict:
    """Check a README's front matter the way the hub does for the parts we write: YAML, license, model-index."""
    import yaml
    from huggingface_hub.repocard_data import model_index_to_eval_results

    errors: list[str] = []
    match = re.match(r"^---\n(.*?)\n---\n", content, re.S)
    if not match:
        return {"errors": [{"message": "no YAML front matter"}], "warnings": []}
    try:
        meta = yaml.safe_load(match.group(1)) or {}
    except yaml.YAMLError as exc:
        return {"errors": [{"message": f"invalid YAML: {exc}"}], "warnings": []}
    if not isinstance(meta.get("tags", []), list):
        errors.append("tags must be a list")
    if "model-index" in meta:
        try:
            model_index_to_eval_results(meta["model-index"])
        except Exception as exc:  # the hub rejects a malformed model-index
            errors.append(f"invalid model-index: {exc}")
    return {"errors": [{"message": e} for e in errors], "warnings": []}
