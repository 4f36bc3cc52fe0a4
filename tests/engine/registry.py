"""A small reader of the test registry (Distribution API, Basic auth), to check what the
real `pulumi up` pushed: tags, manifests by digest, and a file inside an image's layers."""

from __future__ import annotations

import base64
import gzip
import io
import json
import os
import tarfile
import urllib.error
import urllib.request
from dataclasses import dataclass

MANIFEST_TYPES = ", ".join([
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
])
LISTS = (
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.index.v1+json",
)


@dataclass
class Registry:
    host: str
    user: str
    password: str

    @classmethod
    def from_env(cls) -> "Registry":
        return cls(os.environ["DBK_REGISTRY"], os.environ["DBK_REGISTRY_USER"],
                   os.environ["DBK_REGISTRY_PASSWORD"])

    def _get(self, path: str, accept: str | None = None) -> tuple[bytes, dict[str, str]]:
        req = urllib.request.Request(f"http://{self.host}/v2/{path}")
        token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
        if accept:
            req.add_header("Accept", accept)
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(req, timeout=30) as resp:
            return resp.read(), {k.lower(): v for k, v in resp.headers.items()}

    def tags(self, repository: str) -> list[str]:
        try:
            body, _ = self._get(f"{repository}/tags/list")
        except urllib.error.HTTPError as e:
            if e.code == 404:
                return []
            raise
        return sorted(json.loads(body).get("tags") or [])

    def manifest(self, repository: str, reference: str) -> tuple[dict, str, str]:
        """(manifest, media type, digest the registry gives)."""
        body, headers = self._get(f"{repository}/manifests/{reference}", MANIFEST_TYPES)
        return json.loads(body), headers.get("content-type", ""), headers.get("docker-content-digest", "")

    def blob(self, repository: str, digest: str) -> bytes:
        return self._get(f"{repository}/blobs/{digest}")[0]

    def split(self, ref: str) -> tuple[str, str]:
        """`host/repo@sha256:…` → (repo, digest)."""
        assert ref.startswith(self.host + "/"), ref
        repo, _, digest = ref[len(self.host) + 1:].partition("@")
        assert digest.startswith("sha256:"), ref
        return repo, digest

    def image_manifest(self, ref: str, platform: str = "linux/amd64") -> tuple[str, dict]:
        repo, digest = self.split(ref)
        manifest, media_type, got = self.manifest(repo, digest)
        assert got == digest, f"the registry serves {got} for {ref}"
        if media_type in LISTS:
            os_, arch = platform.split("/")[:2]
            entry = next(m for m in manifest["manifests"]
                         if m["platform"]["os"] == os_ and m["platform"]["architecture"] == arch)
            manifest, _, _ = self.manifest(repo, entry["digest"])
        return repo, manifest

    def read_file(self, ref: str, path: str, platform: str = "linux/amd64") -> bytes | None:
        """The content of `path` in the image `ref` pins (the last layer holding it wins), or
        None when no layer has it."""
        repo, manifest = self.image_manifest(ref, platform)
        found = None
        for layer in manifest["layers"]:
            data = self.blob(repo, layer["digest"])
            if data[:2] == b"\x1f\x8b":
                data = gzip.decompress(data)
            with tarfile.open(fileobj=io.BytesIO(data)) as tar:
                for member in tar.getmembers():
                    if member.name.lstrip("./") == path.lstrip("/") and member.isfile():
                        found = tar.extractfile(member).read()
        return found
