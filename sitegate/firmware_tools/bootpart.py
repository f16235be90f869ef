"""A card's boot partition: a mounted directory (the box: /boot/firmware; an installer's
laptop: wherever the card mounts), or a FAT file system image file (a card image before
it is flashed, or where mounting is not permitted), read and written with mtools.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

FAT_MARKS = ((0x36, b"FAT"), (0x52, b"FAT32"))  # FAT12/16 and FAT32 boot sectors


class BootPartitionError(Exception):
    """The partition cannot be read or written; the text says which path and why."""


class BootPartition:
    def read(self, rel: str, limit: int) -> bytes | None:
        """The file's bytes (at most ``limit``: more is an error); None if it is absent."""
        raise NotImplementedError

    def put(self, src: Path, rel: str) -> None:
        raise NotImplementedError

    def write_text(self, rel: str, text: str) -> None:
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
            f.write(text)
        try:
            self.put(Path(f.name), rel)
        finally:
            os.unlink(f.name)

    def remove(self, rel: str) -> None:
        """Delete a file if it is there."""
        raise NotImplementedError

    def scrub(self, rel: str) -> None:
        """Overwrite a file's bytes with zeros in place, then delete it: a deleted FAT file's
        clusters keep their data otherwise. (The card's flash may still keep old pages: the
        token is one-time, and spent once the gateway has enrolled.)"""
        raise NotImplementedError

    def mkdir(self, rel: str) -> None:
        raise NotImplementedError


def open_partition(path: str | Path) -> BootPartition:
    """A mounted directory or a FAT image file; BootPartitionError for anything else."""
    p = Path(path)
    if p.is_dir():
        return MountedPartition(p)
    if p.is_file():
        with open(p, "rb") as f:
            head = f.read(512)
        if len(head) == 512 and any(head[at:at + len(m)] == m for at, m in FAT_MARKS):
            return FatImage(p)
        raise BootPartitionError(f"{p}: neither a directory nor a FAT file system image")
    raise BootPartitionError(f"{p}: no such directory or image (is the card mounted?)")


class MountedPartition(BootPartition):
    def __init__(self, root: Path) -> None:
        self.root = root

    def __str__(self) -> str:
        return str(self.root)

    def _path(self, rel: str) -> Path:
        return self.root / rel

    def read(self, rel: str, limit: int) -> bytes | None:
        try:
            with open(self._path(rel), "rb") as f:
                data = f.read(limit + 1)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise BootPartitionError(f"{self._path(rel)}: {exc.strerror or exc}") from None
        if len(data) > limit:
            raise BootPartitionError(f"{self._path(rel)}: more than {limit} bytes")
        return data

    def put(self, src: Path, rel: str) -> None:
        dst = self._path(rel)
        tmp = dst.with_name(dst.name + ".tmp")
        try:
            shutil.copyfile(src, tmp)
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(tmp, dst)
        except OSError as exc:
            raise BootPartitionError(f"{dst}: {exc.strerror or exc}") from None

    def remove(self, rel: str) -> None:
        path = self._path(rel)
        try:
            path.unlink(missing_ok=True)
            fd = os.open(path.parent, os.O_RDONLY)  # the deletion itself reaches the card
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise BootPartitionError(f"{path}: {exc.strerror or exc}") from None

    def scrub(self, rel: str) -> None:
        path = self._path(rel)
        try:
            with open(path, "r+b") as f:
                f.write(bytes(os.fstat(f.fileno()).st_size))
                f.flush()
                os.fsync(f.fileno())
        except FileNotFoundError:
            return
        except OSError as exc:
            raise BootPartitionError(f"{path}: {exc.strerror or exc}") from None
        self.remove(rel)

    def mkdir(self, rel: str) -> None:
        try:
            self._path(rel).mkdir(exist_ok=True)
        except OSError as exc:
            raise BootPartitionError(f"{self._path(rel)}: {exc.strerror or exc}") from None


class FatImage(BootPartition):
    """mtools on the image: no mount, no root needed."""

    def __init__(self, image: Path) -> None:
        self.image = image
        if shutil.which("mcopy") is None:
            raise BootPartitionError(f"{image}: a FAT image needs mtools (apt-get install "
                                     "mtools), or mount it and give the directory")

    def __str__(self) -> str:
        return str(self.image)

    def _run(self, tool: str, *args: str, ok_missing: bool = False) -> subprocess.CompletedProcess[
            bytes]:
        res = subprocess.run([tool, "-i", str(self.image), *args], capture_output=True,
                             timeout=60, env={**os.environ, "MTOOLS_SKIP_CHECK": "1"})
        if res.returncode != 0 and not (ok_missing and b"not found" in res.stderr):
            why = res.stderr.decode(errors="replace").strip().splitlines()
            raise BootPartitionError(f"{self.image}: {tool} {' '.join(args)}: "
                                     f"{why[-1] if why else f'exit {res.returncode}'}")
        return res

    def read(self, rel: str, limit: int) -> bytes | None:
        res = self._run("mtype", f"::/{rel}", ok_missing=True)
        if res.returncode != 0:
            return None
        if len(res.stdout) > limit:
            raise BootPartitionError(f"{self.image}: {rel}: more than {limit} bytes")
        return res.stdout

    def put(self, src: Path, rel: str) -> None:
        self._run("mcopy", "-o", "-D", "o", str(src), f"::/{rel}")

    def remove(self, rel: str) -> None:
        self._run("mdel", f"::/{rel}", ok_missing=True)

    def scrub(self, rel: str) -> None:
        data = self.read(rel, 1 << 20)
        if data is None:
            return
        # mcopy -o over a file of the same size writes into the clusters it frees (mtools
        # takes the first free cluster): the test reads the raw image to make sure.
        with tempfile.NamedTemporaryFile(delete=False) as f:
            f.write(bytes(len(data)))
        try:
            self.put(Path(f.name), rel)
        finally:
            os.unlink(f.name)
        self.remove(rel)

    def mkdir(self, rel: str) -> None:
        if self._run("mdir", "-b", f"::/{rel}", ok_missing=True).returncode != 0:
            self._run("mmd", f"::/{rel}")
