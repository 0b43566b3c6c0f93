"""Sealed-package throughput as a ratio of raw AES-256-GCM, and peak memory flat in file size.

One run, one machine. Throughput: in this process, alternating, (a) the baseline —
cryptography's AESGCM encrypt / decrypt of 4 MiB chunks in memory, nothing else — and (b)
sealroom's seal (read + SHA-256 + AES-GCM + write), unseal to disk (read + AES-GCM + write +
atomic rename), unseal in memory (iter_stream, nothing written) and, as the I/O ceiling, a
plain copy of the package's bytes (shutil.copyfile, no crypto), each on a --size-mb file of
os.urandom bytes. It prints the best and median MB/s of each, the ratio of the bests to the
baseline, and the same from process CPU time (less sensitive to other work on a shared
machine). Goal: unseal >= 0.4 x raw AES-GCM decrypt.

Peak memory: seal, unseal and unseal-in-memory each run once in a fresh interpreter (this
script with a hidden --child flag) so that no step's high-water mark hides another's; the
resident set after imports and the step's own high-water mark (VmHWM, reset after imports;
see child() for why not ru_maxrss) for --small-mb and --size-mb files. Goal: under 64 MB +
chunk buffers, the same at both sizes.

    python benchmarks/bench_seal.py [--size-mb 512] [--small-mb 64] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from machine_info import machine

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sealroom.crypto.identity import Party
from sealroom.crypto.package import SealedPackage, owner_data_key, seal

CHUNK = 4 << 20
MB = 1 << 20


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} / {five:.2f} / {fifteen:.2f} (1/5/15 min)"


def make_file(path: Path, size_mb: int) -> None:
    with open(path, "wb") as handle:
        for _ in range(size_mb * MB // CHUNK):
            handle.write(os.urandom(CHUNK))


def timed(fn: Callable[[], object]) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


# ------------------------------------------------------------------ operations


class Workdir:
    """The source file, the owner's keys and the package of one size, in a temp folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.source = root / "data.bin"
        self.owner_dir = root / "owner"
        self.package = root / "data.sealed"
        self.out = root / "out"

    def owner(self) -> Party:
        if not self.owner_dir.exists():
            Party.generate("bench", "provider").save(self.owner_dir, b"bench passphrase")
        return Party.load(self.owner_dir, b"bench passphrase")

    def seal(self) -> None:
        shutil.rmtree(self.package, ignore_errors=True)
        seal(self.source, self.owner(), self.package, chunk_size=CHUNK)

    def unseal_to_disk(self) -> None:
        shutil.rmtree(self.out, ignore_errors=True)
        self._opened().unseal_to(self.out, owner_data_key(self.package, self.owner()))

    def plain_copy(self) -> None:
        """The package's bytes copied file to file (sendfile), no crypto: the I/O ceiling."""
        target = self.root / "copy.bin"
        shutil.copyfile(self.package / "chunks.bin", target)
        target.unlink()

    def unseal_in_memory(self) -> None:
        package = self._opened()
        total = 0
        for _, piece in package.iter_stream(owner_data_key(self.package, self.owner())):
            total += len(piece)
        assert total == package.manifest.size

    def _opened(self) -> SealedPackage:
        return SealedPackage.open(self.package, self.owner().identity)


OPS = {
    "seal": Workdir.seal,
    "unseal": Workdir.unseal_to_disk,
    "unseal-mem": Workdir.unseal_in_memory,
}


def memory_kb() -> dict[str, int]:
    """VmRSS and VmHWM of this process (kB) from /proc/self/status."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields


def child(op: str, root: Path) -> None:
    """Run one operation in this fresh interpreter and print its memory high-water marks.

    ru_maxrss is not used: a child started with vfork (as subprocess does) inherits the
    parent's high-water mark at exec. VmHWM belongs to this process's own address space;
    it is reset after imports (clear_refs 5) so that the operation's own peak shows.
    """
    work = Workdir(root)
    work.owner()  # keys loaded before the mark, as in the real CLI
    after_imports = memory_kb()
    Path("/proc/self/clear_refs").write_text("5")
    wall, cpu = timed(lambda: OPS[op](work))
    after = memory_kb()
    result = {
        "imports_kb": after_imports["VmRSS"],
        "imports_peak_kb": after_imports["VmHWM"],
        "op_peak_kb": after["VmHWM"],
        "wall": wall,
        "cpu": cpu,
    }
    print(json.dumps(result))


def in_fresh_process(op: str, root: Path) -> dict[str, float]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, __file__, "--child", op, "--dir", str(root)]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# ------------------------------------------------------------------ baseline


class RawAesGcm:
    """AES-256-GCM over 4 MiB chunks in memory: the ceiling any package format can reach.

    It cycles through 16 distinct chunks (64 MiB, more than this CPU's caches) so that,
    like the package, it streams from memory rather than from a warm cache.
    """

    DISTINCT = 16

    def __init__(self, size: int) -> None:
        self.aead = AESGCM(AESGCM.generate_key(bit_length=256))
        self.n = size // CHUNK
        self.aad = b"sealroom.package.v1" + bytes(16)
        self.plain = [os.urandom(CHUNK) for _ in range(self.DISTINCT)]
        self.sealed = [
            self.aead.encrypt(self._nonce(i), p, self.aad) for i, p in enumerate(self.plain)
        ]

    @staticmethod
    def _nonce(i: int) -> bytes:
        return bytes(7) + i.to_bytes(4, "big") + b"\x00"

    def encrypt(self) -> None:
        for i in range(self.n):
            self.aead.encrypt(self._nonce(i), self.plain[i % self.DISTINCT], self.aad)

    def decrypt(self) -> None:
        for i in range(self.n):
            j = i % self.DISTINCT
            self.aead.decrypt(self._nonce(j), self.sealed[j], self.aad)


# ------------------------------------------------------------------ report


def rate(size: int, seconds: float) -> float:
    return size / MB / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=512, help="file size (multiple of 4)")
    parser.add_argument("--small-mb", type=int, default=64, help="second size for the memory check")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", choices=sorted(OPS), help=argparse.SUPPRESS)
    parser.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.dir)
        return

    print(f"machine: {machine()}")
    print(f"at start: {load()}")
    size = args.size_mb * MB
    with tempfile.TemporaryDirectory(prefix="bench_seal.") as tmp:
        big = Workdir(Path(tmp) / f"{args.size_mb}mb")
        big.root.mkdir()
        make_file(big.source, args.size_mb)
        raw = RawAesGcm(size)
        steps: dict[str, Callable[[], object]] = {
            "raw AES-GCM encrypt": raw.encrypt,
            "seal": big.seal,
            "raw AES-GCM decrypt": raw.decrypt,
            "unseal to disk": big.unseal_to_disk,
            "unseal in memory": big.unseal_in_memory,
            "plain copy, no crypto": big.plain_copy,
        }
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in steps}
        for _ in range(args.repeats):
            for name, fn in steps.items():
                times[name].append(timed(fn))
        shutil.rmtree(big.out, ignore_errors=True)

        print(f"\nthroughput, {args.size_mb} MiB file, 4 MiB chunks, {args.repeats} repeats:")
        print(f"{'':22} {'best MB/s':>10} {'median':>8} {'x raw':>6} {'CPU MB/s':>9} {'x raw':>6}")
        base = {"raw AES-GCM encrypt": "raw AES-GCM encrypt", "seal": "raw AES-GCM encrypt"}
        for name, samples in times.items():
            ref = times[base.get(name, "raw AES-GCM decrypt")]
            best = rate(size, min(w for w, _ in samples))
            median = rate(size, statistics.median(w for w, _ in samples))
            cpu = rate(size, min(c for _, c in samples))
            ratio = best / rate(size, min(w for w, _ in ref))
            cpu_ratio = cpu / rate(size, min(c for _, c in ref))
            print(f"{name:22} {best:10.0f} {median:8.0f} {ratio:6.2f} {cpu:9.0f} {cpu_ratio:6.2f}")
        print(f"after throughput: {load()}")

        small = Workdir(Path(tmp) / f"{args.small_mb}mb")
        small.root.mkdir()
        make_file(small.source, args.small_mb)
        print("\npeak memory, each step in a fresh interpreter (VmRSS / VmHWM):")
        print(f"{'':12} {'file':>9} {'after imports':>14} {'peak of step':>13} {'added':>10}")
        for work, mb in ((small, args.small_mb), (big, args.size_mb)):
            for op in ("seal", "unseal", "unseal-mem"):
                r = in_fresh_process(op, work.root)
                imported, peak = r["imports_kb"] / 1024, r["op_peak_kb"] / 1024
                added = peak - imported
                print(f"{op:12} {mb:5d} MiB {imported:10.1f} MiB {peak:9.1f} MiB {added:6.1f} MiB")
    print(f"chunk buffers: {CHUNK // MB} MiB plaintext + {CHUNK // MB} MiB ciphertext per stream")
    print(f"at end: {load()}")


if __name__ == "__main__":
    main()
