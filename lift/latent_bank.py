"""The latent bank S_W+ (Sect 3.1): one inverted W+ code per phone texture, on disk.

Format (a directory)::

    manifest.json          what the bank is: stems (sorted), shard_size, num_ws, w_dim,
                           generator fingerprint, the inversion config
    shard_00000.safetensors
    shard_00001.safetensors
    ...
    index.json             summary of every record, written once the bank is complete
                           (a convenience; the shards are the source of truth)

Shard ``k`` holds the codes of ``manifest.stems[k * shard_size : (k + 1) * shard_size]``
(stems are sorted, so the partition is deterministic). A shard file holds the tensors
``w_plus`` ``[n, num_ws, w_dim]`` float32, ``index`` ``[n]`` int64 (positions in the
manifest's stem list), ``final_loss``, ``mse``, ``perceptual`` ``[n]`` float32 and
``steps`` ``[n]`` int64, and its safetensors metadata holds ``{"stems": json list}``.
Every file is written atomically (:func:`lift.atomic.atomic_path`), so a shard is either
complete or absent: a killed run resumes by skipping the shards that exist. Under DDP rank
``r`` of ``world_size`` inverts shards ``r::world_size``; ranks never write the same file.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from lift.atomic import atomic_path, atomic_write_text

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
INDEX = "index.json"

# Manifest fields that must agree for a run to resume into an existing bank.
# ``config`` holds the inversion settings: codes of two objectives never mix in one bank.
_IDENTITY_KEYS = ("format_version", "stems", "shard_size", "num_ws", "w_dim", "generator",
                  "config")


class LatentBankError(RuntimeError):
    """A bank that is incomplete, inconsistent, or belongs to another run."""


def shard_name(k: int) -> str:
    return f"shard_{k:05d}.safetensors"


def state_dict_fingerprint(module: torch.nn.Module) -> str:
    """sha256 over a module's state dict (names, dtypes, shapes and values).

    Identifies the generator a bank was inverted with, whether it came from a checkpoint
    file or was built in memory.
    """
    return tensors_fingerprint(module.state_dict().items())


def tensors_fingerprint(items: Iterable[tuple[str, torch.Tensor]]) -> str:
    """sha256 over named tensors (names, dtypes, shapes and values), in the given order."""
    digest = hashlib.sha256()
    for name, tensor in items:
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        digest.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


@dataclass(frozen=True)
class BankLayout:
    """The deterministic partition of sorted stems into shards, and rank assignment."""

    stems: tuple[str, ...]
    shard_size: int

    def __post_init__(self) -> None:
        if self.shard_size < 1:
            raise ValueError(f"shard_size must be >= 1, got {self.shard_size}")
        if list(self.stems) != sorted(set(self.stems)):
            raise ValueError("BankLayout stems must be sorted and unique")

    @classmethod
    def from_stems(cls, stems: Iterable[str], shard_size: int) -> "BankLayout":
        stems = list(stems)
        if len(set(stems)) != len(stems):
            dup = sorted({s for s in stems if stems.count(s) > 1})[:5]
            raise ValueError(f"duplicate texture stems (e.g. {dup}); stems must be unique")
        return cls(tuple(sorted(stems)), shard_size)

    @property
    def num_shards(self) -> int:
        return math.ceil(len(self.stems) / self.shard_size)

    def shard_stems(self, k: int) -> tuple[str, ...]:
        return self.stems[k * self.shard_size : (k + 1) * self.shard_size]

    def shard_of(self, stem: str) -> int:
        return self.position(stem) // self.shard_size

    def position(self, stem: str) -> int:
        if not hasattr(self, "_positions"):
            object.__setattr__(self, "_positions", {s: i for i, s in enumerate(self.stems)})
        try:
            return self._positions[stem]  # type: ignore[attr-defined]
        except KeyError:
            raise KeyError(f"texture {stem!r} is not in this bank's stem list") from None

    def shards_for_rank(self, rank: int, world_size: int) -> list[int]:
        """Shards ``rank::world_size``: disjoint across ranks, together all shards."""
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world of size {world_size}")
        return list(range(self.num_shards))[rank::world_size]


def make_manifest(
    layout: BankLayout,
    *,
    num_ws: int,
    w_dim: int,
    generator: Mapping[str, Any],
    config: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The manifest dict; ``generator`` identifies G_phone (``fingerprint``, ``checkpoint``)."""
    return {
        "format_version": FORMAT_VERSION,
        "num_textures": len(layout.stems),
        "shard_size": layout.shard_size,
        "num_shards": layout.num_shards,
        "num_ws": int(num_ws),
        "w_dim": int(w_dim),
        "generator": dict(generator),
        "config": dict(config or {}),
        "stems": list(layout.stems),
    }


class LatentBankWriter:
    """Writes a bank shard by shard; resumes into an existing bank of the same identity."""

    def __init__(self, root: str | Path, manifest: Mapping[str, Any]):
        self.root = Path(root)
        self.manifest = dict(manifest)
        self.layout = BankLayout(tuple(self.manifest["stems"]), int(self.manifest["shard_size"]))

    def prepare(self) -> None:
        """Write the manifest, or check that an existing one describes the same bank.

        Call on one rank (rank 0) before any shard is written; the others call
        :meth:`check_manifest` after a barrier.
        """
        path = self.root / MANIFEST
        if path.exists():
            self.check_manifest()
            return
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(self.manifest, indent=1))

    def check_manifest(self) -> None:
        existing = read_manifest(self.root)
        diff = [k for k in _IDENTITY_KEYS if existing.get(k) != self.manifest.get(k)]
        if diff:
            raise LatentBankError(
                f"latent bank {self.root} was written by another run: its manifest differs in "
                f"{diff}. Resume only with the same textures, shard_size, generator and "
                f"inversion settings; "
                f"use a new bank_dir otherwise."
            )

    def done_shards(self) -> set[int]:
        return {k for k in range(self.layout.num_shards) if (self.root / shard_name(k)).exists()}

    def write_shard(
        self,
        k: int,
        stems: Sequence[str],
        w_plus: torch.Tensor,
        stats: Mapping[str, torch.Tensor],
        rank: int = 0,
    ) -> Path:
        """Write shard ``k`` atomically; ``stems`` must be exactly the shard's stems.

        ``stats`` holds ``final_loss``, ``mse``, ``perceptual`` (float) and ``steps`` (int),
        each ``[n]``; ``rank`` (the writing process) is recorded in the shard's metadata.
        """
        expected = self.layout.shard_stems(k)
        order = sorted(range(len(stems)), key=lambda i: stems[i])
        stems = [stems[i] for i in order]
        if tuple(stems) != expected:
            raise LatentBankError(
                f"shard {k} must hold exactly its {len(expected)} stems; got {len(stems)}"
            )
        n, num_ws, w_dim = len(stems), self.manifest["num_ws"], self.manifest["w_dim"]
        if tuple(w_plus.shape) != (n, num_ws, w_dim):
            raise LatentBankError(f"shard {k}: w_plus {tuple(w_plus.shape)} != {(n, num_ws, w_dim)}")
        idx = torch.as_tensor(order)
        tensors = {
            "w_plus": w_plus.detach()[idx].float().cpu().contiguous(),
            "index": torch.tensor([self.layout.position(s) for s in stems], dtype=torch.int64),
        }
        for key, dtype in (("final_loss", torch.float32), ("mse", torch.float32),
                           ("perceptual", torch.float32), ("steps", torch.int64)):
            value = torch.as_tensor(stats[key]).detach().cpu()
            if value.shape != (n,):
                raise LatentBankError(f"shard {k}: stat {key!r} has shape {tuple(value.shape)}")
            tensors[key] = value[idx].to(dtype).contiguous()
        path = self.root / shard_name(k)
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp), metadata={"stems": json.dumps(stems), "shard": str(k),
                                                    "rank": str(rank)})
        return path

    def write_index(self) -> None:
        """Write ``index.json`` (one record per texture); call once the bank is complete."""
        bank = LatentBank.open(self.root)
        bank.check_complete()
        atomic_write_text(self.root / INDEX, json.dumps(bank.records(), indent=1))


_MANIFEST_FIELDS = {"format_version": int, "num_shards": int, "shard_size": int, "num_ws": int,
                   "w_dim": int, "stems": list}


def read_manifest(root: str | Path) -> dict[str, Any]:
    """A bank's ``manifest.json``, checked: errors name the file and what is wrong."""
    root = Path(root)
    path = root / MANIFEST
    if not path.exists():
        raise LatentBankError(f"{root} is not a latent bank (no {MANIFEST})")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise LatentBankError(f"{path}: corrupt bank manifest, not valid JSON ({exc}); "
                              "re-invert into a new bank_dir") from None
    if not isinstance(manifest, dict):
        raise LatentBankError(f"{path}: corrupt bank manifest: a JSON object expected, got "
                              f"{type(manifest).__name__}")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise LatentBankError(
            f"{root}: bank format {manifest.get('format_version')} != {FORMAT_VERSION}"
        )
    for key, kind in _MANIFEST_FIELDS.items():
        if not isinstance(manifest.get(key), kind):
            raise LatentBankError(f"{path}: corrupt bank manifest: '{key}' is missing or not "
                                  f"a{'n' if kind is int else ''} {kind.__name__}")
    return manifest


def _read_shard(file: Path, k: int, manifest: Mapping[str, Any]) -> dict[str, Any]:
    """One shard's tensors and stems; a :class:`LatentBankError` naming the file when it is
    truncated, corrupt or does not fit the manifest."""
    try:
        with safe_open(str(file), framework="pt") as fh:
            meta = fh.metadata() or {}
            data: dict[str, Any] = {key: fh.get_tensor(key) for key in fh.keys()}
    except Exception as exc:  # safetensors raises its own error type (or OSError)
        raise LatentBankError(
            f"{file}: truncated or corrupt bank shard ({str(exc).splitlines()[0][:160]}); "
            "delete it and rerun the inversion with the same bank_dir to rewrite it") from None
    try:
        data["stems"] = json.loads(meta["stems"])
    except (KeyError, ValueError):
        raise LatentBankError(f"{file}: bank shard without its stem list (metadata "
                              "'stems'); not written by lift") from None
    w_plus = data.get("w_plus")
    n = len(data["stems"])
    expected = (n, int(manifest["num_ws"]), int(manifest["w_dim"]))
    if w_plus is None or tuple(w_plus.shape) != expected:
        shape = None if w_plus is None else tuple(w_plus.shape)
        raise LatentBankError(f"{file}: shard {k} holds w_plus of shape {shape}, the manifest "
                              f"says {expected}; the shard is from another bank")
    data["rank"] = int(meta.get("rank", 0))
    return data


class LatentBank:
    """Read access to a bank directory (complete or, for inspection, partial)."""

    def __init__(self, root: Path, manifest: dict[str, Any], shards: dict[int, dict[str, Any]]):
        self.root = root
        self.manifest = manifest
        self.layout = BankLayout(tuple(manifest["stems"]), int(manifest["shard_size"]))
        self._shards = shards  # k -> {"stems": [...], tensors...}
        self._where: dict[str, tuple[int, int]] = {
            s: (k, i) for k, sh in sorted(shards.items()) for i, s in enumerate(sh["stems"])
        }

    @classmethod
    def open(cls, root: str | Path) -> "LatentBank":
        root = Path(root)
        path = root / MANIFEST
        if not path.exists():
            raise LatentBankError(f"{root} is not a latent bank (no {MANIFEST})")
        manifest = read_manifest(root)
        shards: dict[int, dict[str, Any]] = {}
        for k in range(int(manifest["num_shards"])):
            file = root / shard_name(k)
            if not file.exists():
                continue
            shards[k] = _read_shard(file, k, manifest)
        return cls(root, manifest, shards)

    @property
    def num_ws(self) -> int:
        return int(self.manifest["num_ws"])

    @property
    def w_dim(self) -> int:
        return int(self.manifest["w_dim"])

    @property
    def stems(self) -> list[str]:
        """Stems whose codes are present, in bank order (shard by shard)."""
        return list(self._where)

    def __len__(self) -> int:
        return len(self._where)

    def missing_shards(self) -> list[int]:
        return [k for k in range(self.layout.num_shards) if k not in self._shards]

    @property
    def is_complete(self) -> bool:
        return not self.missing_shards()

    def check_complete(self) -> None:
        missing = self.missing_shards()
        if missing:
            raise LatentBankError(
                f"latent bank {self.root} is incomplete: {len(missing)} of "
                f"{self.layout.num_shards} shards missing (first: "
                f"{', '.join(shard_name(k) for k in missing[:3])}); "
                f"rerun the inversion with the same bank_dir to finish it"
            )
        for k, sh in self._shards.items():
            if tuple(sh["stems"]) != self.layout.shard_stems(k):
                raise LatentBankError(f"{self.root / shard_name(k)} does not hold its stems")

    def get(self, stem: str) -> torch.Tensor:
        """The W+ code of one texture, ``[num_ws, w_dim]``."""
        try:
            k, i = self._where[stem]
        except KeyError:
            raise KeyError(f"texture {stem!r} is not in latent bank {self.root}") from None
        return self._shards[k]["w_plus"][i]

    def tensor(self) -> torch.Tensor:
        """Every present code, ``[len(self), num_ws, w_dim]``, in :attr:`stems` order."""
        parts = [self._shards[k]["w_plus"] for k in sorted(self._shards)]
        if not parts:
            return torch.empty(0, self.num_ws, self.w_dim)
        return torch.cat(parts)

    def shard_ranks(self) -> dict[int, int]:
        """Which rank wrote each present shard."""
        return {k: sh["rank"] for k, sh in self._shards.items()}

    def records(self) -> list[dict[str, Any]]:
        """One dict per present texture: stem, shard, final_loss, mse, perceptual, steps."""
        out = []
        for k in sorted(self._shards):
            sh = self._shards[k]
            for i, stem in enumerate(sh["stems"]):
                out.append({
                    "stem": stem,
                    "shard": k,
                    "final_loss": float(sh["final_loss"][i]),
                    "mse": float(sh["mse"][i]),
                    "perceptual": float(sh["perceptual"][i]),
                    "steps": int(sh["steps"][i]),
                })
        return out


def check_bank_generator(bank: "LatentBank", generator: torch.nn.Module, source: str) -> None:
    """The bank's codes are only meaningful for the generator they were inverted with: an
    error naming the bank and both generators' origins when ``generator`` is another one."""
    recorded = (bank.manifest.get("generator") or {}).get("fingerprint")
    if recorded is None:
        return  # written in memory by a test or an older version: nothing to compare
    actual = state_dict_fingerprint(generator)
    if actual != recorded:
        inverted_with = (bank.manifest.get("generator") or {}).get("checkpoint")
        raise LatentBankError(
            f"latent bank {bank.root} was inverted with the generator of "
            f"{inverted_with or 'an in-memory generator'} (fingerprint {recorded[:12]}), but is "
            f"used with the generator of {source} (fingerprint {actual[:12]}); re-invert the "
            "bank with this prior checkpoint or point the translator at the bank's prior")
