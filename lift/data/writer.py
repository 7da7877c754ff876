"""``lift data synth``: write the synthetic benchmark as an ordinary texture folder.

The folder has the layout :class:`~lift.data.FolderSource` reads (docs/data.md): 16-bit RGB
PNG textures (the generator quantises to 16-bit levels, so reading them back gives the
very tensors :class:`~lift.data.SyntheticSource` yields), 8-bit grey PNG masks (values 0/255),
expression textures, the five split files and ``lift_synth.json``, a manifest with the
profile, seed, generator parameters and counts.

Every file is written atomically, so a file that exists is complete: an interrupted run is
resumed by running the same command again (existing files are kept). A folder holding a
different profile or seed is refused unless ``overwrite``.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import shutil
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from tqdm import tqdm

from lift.atomic import atomic_write_text
from lift.data.io import TextureError, write_texture
from lift.data.sources import SPLITS, SyntheticSource

MANIFEST = "lift_synth.json"
FORMAT_VERSION = 1
_OWNED = ("phone", "studio", "masks", "expressions", "expressions_studio", "splits", MANIFEST)


def generator_parameters(synthesizer) -> dict:
    """The synthesizer's constructor arguments (JSON types), recorded in the manifest.

    Flat, one key per argument (the parameter groups' fields by their own names), so a
    folder written before the parameters were grouped still matches and resumes.
    """
    return {name: list(value) if isinstance(value, tuple) else value
            for name, value in synthesizer.parameters().items()}


def _identity(source: SyntheticSource) -> dict:
    return {
        "format": FORMAT_VERSION,
        "profile": dataclasses.asdict(source.profile),
        "seed": source.seed,
        "generator": generator_parameters(source.synthesizer),
    }


def _pngs(folder: Path) -> int:
    if not folder.is_dir():
        return 0
    return sum(1 for p in folder.glob("*.png") if not p.name.startswith("."))


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_END = b"IEND\xaeB`\x82"  # the IEND chunk's type and CRC: the last 8 bytes of a whole PNG


def _whole_png(path: Path) -> bool:
    """A PNG file that starts with the signature and ends with its IEND chunk. This writer's
    files are atomic, so anything else (zero bytes, a truncated copy) came from elsewhere and
    is rewritten, never kept."""
    try:
        size = path.stat().st_size
        if size < len(_PNG_SIGNATURE) + 12:
            return False
        with open(path, "rb") as fh:
            head = fh.read(len(_PNG_SIGNATURE))
            fh.seek(size - len(_PNG_END))
            return head == _PNG_SIGNATURE and fh.read() == _PNG_END
    except OSError:
        return False


def _complete(out: Path, stem: str, has_phone: bool, has_studio: bool, n_expr: int) -> bool:
    """Whether every file of ``stem`` exists as a whole PNG."""
    files = []
    if has_phone:
        files += [out / "phone" / f"{stem}.png", out / "masks" / f"{stem}.png"]
    if has_studio:
        files.append(out / "studio" / f"{stem}.png")
    for side in ("expressions", "expressions_studio"):
        folder = out / side / stem
        if _pngs(folder) != n_expr:
            return False
        if folder.is_dir():
            files += [p for p in folder.glob("*.png") if not p.name.startswith(".")]
    return all(_whole_png(p) for p in files)


def _write_subject(out: Path, source: SyntheticSource, stem: str) -> int:
    """Write one subject's missing files; returns how many were written."""
    _index, has_phone, has_studio, n_expr = source.subjects[stem]
    if _complete(out, stem, has_phone, has_studio, n_expr):
        return 0
    sample = source.sample(stem, with_expressions=n_expr > 0)
    tensors: dict[Path, tuple] = {}
    if has_phone:
        tensors[out / "phone" / f"{stem}.png"] = (sample.phone, 16)
        tensors[out / "masks" / f"{stem}.png"] = (sample.mask, 8)  # 0/1 values: 8 bits exact
    if has_studio:
        tensors[out / "studio" / f"{stem}.png"] = (sample.studio, 16)
    for name, tensor in sample.expressions.items():
        tensors[out / "expressions" / stem / f"{name}.png"] = (tensor, 16)
    for name, tensor in sample.expressions_studio.items():
        tensors[out / "expressions_studio" / stem / f"{name}.png"] = (tensor, 16)
    written = 0
    for path, (tensor, bits) in tensors.items():
        if not _whole_png(path):  # missing, or a broken file left by someone else
            write_texture(path, tensor, bits=bits)
            written += 1
    return written


def _prepare(out: Path, identity: dict, overwrite: bool) -> None:
    """Refuse a folder holding something else; with ``overwrite`` clear what we own."""
    if overwrite:
        for name in _OWNED:  # only what this writer creates
            path = out / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
        return
    manifest = out / MANIFEST
    if manifest.is_file():
        old = json.loads(manifest.read_text())
        if {k: old.get(k) for k in identity} != identity:
            raise TextureError(
                f"{manifest}: {out} holds synthetic profile "
                f"{old.get('profile', {}).get('name')!r} seed {old.get('seed')} (or other "
                "generator parameters); pass --overwrite to replace it, or choose another --out")
    elif out.is_dir() and any(out.iterdir()):
        raise TextureError(f"{out}: folder is not empty and has no {MANIFEST}; "
                           "choose an empty --out or pass --overwrite")


def _write_chunk(out: str, profile, seed: int, stems: list[str]) -> int:
    """Worker process: write ``stems`` (the profile object travels, so unregistered work)."""
    from lift.data import synth

    synth.PROFILES.setdefault(profile.name, profile)
    source = SyntheticSource(profile.name, seed, cache_size=0)
    return sum(_write_subject(Path(out), source, stem) for stem in stems)


def _write_parallel(out: Path, source: SyntheticSource, stems: list[str], workers: int,
                    bar: tqdm) -> int:
    # spawn, not fork: forking a process whose torch already ran OpenMP threads can hang.
    chunk = max(1, min(16, len(stems) // (4 * workers)))
    chunks = [stems[i:i + chunk] for i in range(0, len(stems), chunk)]
    written = 0
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(_write_chunk, str(out), source.profile, source.seed, c): len(c)
                   for c in chunks}
        for future in as_completed(futures):
            written += future.result()
            bar.update(futures[future])
    return written


def write_synthetic_benchmark(out: str, profile: str, *, seed: int = 0,
                              overwrite: bool = False, workers: int = 1,
                              progress: bool = True) -> dict:
    """Write (or resume writing) the synthetic benchmark ``profile`` into ``out``.

    ``workers`` > 1 generates subjects in that many processes (the output is identical).
    Returns the manifest (also written to ``out/lift_synth.json``).
    """
    start = time.perf_counter()
    out_path = Path(out)
    source = SyntheticSource(profile, seed, cache_size=0)
    identity = _identity(source)
    _prepare(out_path, identity, overwrite)
    out_path.mkdir(parents=True, exist_ok=True)
    manifest = {**identity, "complete": False}
    atomic_write_text(out_path / MANIFEST, json.dumps(manifest, indent=2) + "\n")

    splits = source.splits()
    for split in SPLITS:
        header = (f"# {split} of synthetic profile {profile!r}, seed {seed} "
                  "(written by `lift data synth`)\n")
        atomic_write_text(out_path / "splits" / f"{split}.txt",
                          header + "".join(f"{stem}\n" for stem in splits[split]))
    stems = list(source.subjects)
    with tqdm(total=len(stems), desc=f"lift data synth {profile}", unit="subject",
              disable=not progress) as bar:
        if workers > 1:
            written = _write_parallel(out_path, source, stems, workers, bar)
        else:
            written = 0
            for stem in stems:
                written += _write_subject(out_path, source, stem)
                bar.update(1)

    counts = {split: len(stems_) for split, stems_ in splits.items()}
    files = {sub: sum(1 for p in (out_path / sub).rglob("*.png") if not p.name.startswith("."))
             for sub in ("phone", "studio", "masks", "expressions", "expressions_studio")}
    elapsed = time.perf_counter() - start
    manifest.update(complete=True, subjects=len(stems), splits=counts, files=files)
    atomic_write_text(out_path / MANIFEST, json.dumps(manifest, indent=2) + "\n")
    print(f"lift data synth: profile {profile!r} seed {seed} -> {out_path}\n"
          f"  subjects {len(stems)}, files written {written} "
          f"(of {sum(files.values())}), {elapsed:.1f} s with {max(1, workers)} process(es)\n"
          "  splits: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return manifest
