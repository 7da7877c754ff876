"""A texture dataset as plain image folders, validated when opened and when read.

Layout (see docs/data.md)::

    ROOT/phone/<stem>.png|exr|tif        phone-captured neutral textures, RGB
    ROOT/studio/<stem>.*                 studio-captured textures, RGB
    ROOT/masks/<stem>.*                  optional: visibility of the phone texels, 1 channel
    ROOT/expressions/<stem>/<name>.*     optional: phone-captured expression textures
    ROOT/expressions_studio/<stem>/<name>.*   optional: their studio-lit ground truth
    ROOT/splits/<split>.txt              optional: one stem per line, '#' starts a comment

Pairing is by file stem. Opening a folder lists it and reads only image headers; every
problem found is an error that names the file (``on_error="raise"``) or, with
``on_error="skip"``, the stem is left out of the split, a warning is issued and the
reason is kept in ``source.skipped``.
"""

from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from lift.data.io import TEXTURE_EXTENSIONS, TextureError, TextureInfo, read_texture, texture_info
from lift.data.sources import KINDS, SPLIT_KEYS, SPLITS, TEST_SPLITS, TRAIN_SPLITS, TextureSource

KIND_DIRS = {"phone": "phone", "studio": "studio", "mask": "masks"}
KIND_CHANNELS = {"phone": 3, "studio": 3, "mask": 1}
EXPRESSION_DIRS = {"phone": "expressions", "studio": "expressions_studio"}
MAX_LISTED = 20  # problems quoted in one error message


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a folder; ``stem``/``split`` say what it disqualifies."""

    message: str
    stem: str | None = None
    split: str | None = None  # None: every split that needs `kind` (all, if kind is None)
    kind: str | None = None  # the file kind concerned: phone, studio or mask

    def __str__(self) -> str:
        return self.message


class _Scan:
    """The folder's files and headers, and every problem found in them."""

    def __init__(self, root: Path):
        self.root = root
        self.problems: list[Problem] = []
        self.files: dict[str, dict[str, Path]] = {}  # kind -> stem -> path
        self.info: dict[Path, TextureInfo] = {}
        self.expr_files: dict[str, dict[str, dict[str, Path]]] = {}  # phone/studio -> stem -> name
        if not root.is_dir():
            raise TextureError(f"{root}: dataset folder not found")
        present = [d for d in ("phone", "studio") if (root / d).is_dir()]
        if not present:
            raise TextureError(f"{root}: has neither a phone/ nor a studio/ folder")
        for kind, sub in KIND_DIRS.items():
            self.files[kind] = self._list(root / sub, kind)
        for side, sub in EXPRESSION_DIRS.items():
            self.expr_files[side] = self._list_expressions(root / sub, side)

    def _add(self, message: str, stem: str | None = None, split: str | None = None,
             kind: str | None = None) -> None:
        self.problems.append(Problem(message, stem, split, kind))

    def _header(self, path: Path, channels: int, stem: str, split: str | None = None,
                kind: str | None = None) -> TextureInfo | None:
        try:
            info = texture_info(path)
        except TextureError as exc:
            self._add(str(exc), stem, split, kind)
            return None
        if info.channels != channels:
            want = "1 grey channel (mask)" if channels == 1 else "3 RGB channels"
            self._add(f"{path}: has {info.channels} channel(s), expected {want}", stem, split,
                      kind)
            return None
        if info.width != info.height:
            self._add(f"{path}: texture is not square ({info.width}x{info.height})", stem, split,
                      kind)
            return None
        self.info[path] = info
        return info

    def _list(self, folder: Path, kind: str) -> dict[str, Path]:
        out: dict[str, Path] = {}
        if not folder.is_dir():
            return out
        for path in sorted(folder.iterdir()):
            if path.name.startswith("."):  # hidden files, atomic-write temporaries
                continue
            stem = path.stem
            if path.is_dir() or path.suffix.lower() not in TEXTURE_EXTENSIONS:
                self._add(f"{path}: unsupported extension or not a file "
                          f"(supported: {', '.join(TEXTURE_EXTENSIONS)})", stem, kind=kind)
                continue
            if stem in out:
                self._add(f"{path}: stem {stem!r} has two {kind} files "
                          f"({out[stem].name} and {path.name})", stem, kind=kind)
                out[stem] = None  # ambiguous: unusable
                continue
            out[stem] = path
        return {stem: p for stem, p in out.items()
                if p is not None
                and self._header(p, KIND_CHANNELS[kind], stem, kind=kind) is not None}

    def _list_expressions(self, folder: Path, side: str) -> dict[str, dict[str, Path]]:
        out: dict[str, dict[str, Path]] = {}
        if not folder.is_dir():
            return out
        for sub in sorted(folder.iterdir()):
            if sub.name.startswith("."):
                continue
            if not sub.is_dir():
                self._add(f"{sub}: expected a folder per stem ({folder.name}/<stem>/<name>.png)")
                continue
            names: dict[str, Path] = {}
            for path in sorted(sub.iterdir()):
                if path.name.startswith("."):
                    continue
                if path.suffix.lower() not in TEXTURE_EXTENSIONS or path.stem in names:
                    self._add(f"{path}: unsupported extension, folder, or duplicate "
                              "expression name", sub.name, split="expressions")
                    continue
                if self._header(path, 3, sub.name, split="expressions") is not None:
                    names[path.stem] = path
            out[sub.name] = names
        return out


def _read_split_file(path: Path) -> tuple[list[str], list[tuple[int, str]], list[Problem]]:
    """Stems in order (``#`` comments and blank lines ignored), (line, stem) duplicates, and
    the lines that are not a stem (a path: absolute, with a separator, or ``..``): a split file
    lists file stems, never paths, so it cannot point outside the dataset folder."""
    stems, seen, dups, bad = [], set(), [], []
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        return [], [], [Problem(f"{path}: unreadable split file ({exc})")]
    for lineno, line in enumerate(text.splitlines(), 1):
        stem = line.split("#", 1)[0].strip()
        if not stem:
            continue
        if "/" in stem or "\\" in stem or stem.startswith(".") or Path(stem).is_absolute():
            bad.append(Problem(f"{path}:{lineno}: {stem!r} is a path, not a file stem (split "
                               "files list stems such as s000001, found in phone/ and studio/; "
                               "no paths)"))
            continue
        if stem in seen:
            dups.append((lineno, stem))
            continue
        seen.add(stem)
        stems.append(stem)
    return stems, dups, bad


class FolderSource(TextureSource):
    """Textures from a folder laid out as described in docs/data.md.

    Args:
        root: the dataset folder (``phone/``, ``studio/``, optional ``masks/``,
            ``expressions/``, ``expressions_studio/``, ``splits/``).
        on_error: "raise" (default): any problem is a :class:`TextureError` naming the
            file; "skip": the stems concerned are left out of their split with a
            warning, and the reasons are kept in ``self.skipped``.
    """

    def __init__(self, root: str, on_error: Literal["raise", "skip"] = "raise"):
        super().__init__()
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        self.root = Path(root)
        self.on_error = on_error
        scan = _Scan(self.root)
        self._files = scan.files
        self._info = scan.info
        self._expr = scan.expr_files
        self.split_sources: dict[str, str] = {}  # split -> "splits/x.txt" or "default"
        problems = list(scan.problems)
        self._splits = self._make_splits(problems)
        self._sizes: dict[tuple[str, str], tuple[int, int]] = {}
        self._check_splits(problems)
        self.problems = problems
        self._apply(problems)

    # ------------------------------------------------------------------ construction

    def _make_splits(self, problems: list[Problem]) -> dict[str, list[str]]:
        files = {split: self.root / "splits" / f"{split}.txt" for split in SPLITS}
        listed: dict[str, list[str]] = {}
        split_dir = self.root / "splits"
        if split_dir.is_dir():
            for path in sorted(split_dir.iterdir()):
                if path.name.startswith("."):
                    continue
                if path.suffix != ".txt" or path.stem not in SPLITS:
                    problems.append(Problem(
                        f"{path}: unknown split file (split files are "
                        f"{', '.join(s + '.txt' for s in SPLITS)})"))
        for split, path in files.items():
            if path.is_file():
                stems, dups, bad = _read_split_file(path)
                problems.extend(bad)
                for lineno, stem in dups:
                    problems.append(Problem(f"{path}:{lineno}: stem {stem!r} listed twice"))
                listed[split] = stems
                self.split_sources[split] = f"splits/{split}.txt"
        phone, studio = set(self._files["phone"]), set(self._files["studio"])
        tested = {stem for split in TEST_SPLITS for stem in listed.get(split, [])}
        # Without a split file: train splits take every stem with the right files, except
        # stems listed in a test split; test splits are empty.
        defaults = {
            "phone_train": phone - tested,
            "studio_train": studio - tested,
            "paired_train": (phone & studio) - tested,
            "paired_test": set(),
            "unpaired_test": set(),
        }
        out = {}
        for split in SPLITS:
            if split in listed:
                out[split] = listed[split]
            else:
                out[split] = sorted(defaults[split])
                self.split_sources[split] = "default"
        return out

    def _where(self, split: str) -> str:
        src = self.split_sources[split]
        return str(self.root / src) if src != "default" else f"{self.root} (split {split})"

    def _check_splits(self, problems: list[Problem]) -> None:
        bad = {(p.stem, p.kind) for p in problems if p.split is None and p.stem is not None}
        for split in SPLITS:
            for stem in self._splits[split]:
                for kind in SPLIT_KEYS[split]:
                    if kind == "mask" or (stem, kind) in bad:
                        continue  # masks are optional; unusable files were reported already
                    if stem not in self._files[kind]:
                        problems.append(Problem(
                            f"{self._where(split)}: stem {stem!r} has no {KIND_DIRS[kind]}/ "
                            f"file, but split {split} needs one", stem, split))
        # A test subject seen in training would inflate every metric.
        for test in TEST_SPLITS:
            test_stems = set(self._splits[test])
            for train in TRAIN_SPLITS:
                for stem in sorted(test_stems.intersection(self._splits[train])):
                    problems.append(Problem(
                        f"{self._where(train)}: stem {stem!r} is also in test split {test} "
                        f"({self._where(test)}); test subjects must not be trained on",
                        stem, train))
        # One size per kind within a split (the majority size wins); masks match their phone.
        for split in SPLITS:
            for kind in ("phone", "studio"):
                if kind not in SPLIT_KEYS[split]:
                    continue
                sizes = {stem: self._info[self._files[kind][stem]].size
                         for stem in self._splits[split] if stem in self._files[kind]}
                if not sizes:
                    continue
                common, _ = Counter(sizes.values()).most_common(1)[0]
                self._sizes[(split, kind)] = common
                for stem, size in sizes.items():
                    if size != common:
                        problems.append(Problem(
                            f"{self._files[kind][stem]}: size {size[1]}x{size[0]} differs from "
                            f"the {common[1]}x{common[0]} of the other {kind} textures in split "
                            f"{split}", stem, split))
            if "phone" in SPLIT_KEYS[split] and (split, "phone") in self._sizes:
                self._sizes[(split, "mask")] = self._sizes[(split, "phone")]
        for stem, mask in self._files["mask"].items():
            phone = self._files["phone"].get(stem)
            if phone is None:
                if (stem, "phone") not in bad:
                    problems.append(Problem(f"{mask}: mask without a phone/{stem}.* texture"))
            elif self._info[mask].size != self._info[phone].size:
                m, p = self._info[mask], self._info[phone]
                problems.append(Problem(
                    f"{mask}: mask size {m.width}x{m.height} differs from its phone texture "
                    f"{phone.name} ({p.width}x{p.height})", stem, kind="mask"))
        for side in ("phone", "studio"):
            for stem, names in self._expr[side].items():
                base = self._files[side].get(stem)
                for name, path in names.items():
                    if base is not None and self._info[path].size != self._info[base].size:
                        info, ref = self._info[path], self._info[base]
                        problems.append(Problem(
                            f"{path}: size {info.width}x{info.height} differs from {base} "
                            f"({ref.width}x{ref.height})", stem, split="expressions"))

    def _apply(self, problems: list[Problem]) -> None:
        if not problems:
            return
        if self.on_error == "raise":
            raise TextureError(_format_problems(self.root, problems))
        for p in problems:
            if p.split == "expressions":
                self.record_skip(f"expressions/{p.stem}", p.message)
                continue
            if p.split is not None:
                splits = (p.split,)
            else:
                splits = [s for s in SPLITS if p.kind is None or p.kind in SPLIT_KEYS[s]]
            for split in splits:
                if p.stem is not None and p.stem in self._splits[split]:
                    self._splits[split].remove(p.stem)
                    self.record_skip(f"{split}/{p.stem}", p.message)
        warnings.warn(
            f"{self.root}: skipping {self.num_skipped} split entries "
            f"({len(problems)} problem(s)); see FolderSource.skipped:\n"
            + "\n".join(f"  - {p}" for p in problems[:MAX_LISTED]),
            stacklevel=3,
        )

    # ------------------------------------------------------------------ reading

    def splits(self) -> dict[str, list[str]]:
        return {split: list(self._splits[split]) for split in SPLITS}

    def path(self, stem: str, kind: str) -> Path | None:
        return self._files[kind].get(stem)

    def load(self, stem: str, kind: str) -> torch.Tensor:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        path = self._files[kind].get(stem)
        if path is None:
            if kind == "mask" and stem in self._files["phone"]:
                # No mask file: every texel of the phone texture counts as seen.
                h, w = self._info[self._files["phone"][stem]].size
                return torch.ones(1, h, w)
            raise TextureError(f"{self.root}: stem {stem!r} has no {KIND_DIRS[kind]}/ file")
        return self._read(path, KIND_CHANNELS[kind])

    def _read(self, path: Path, channels: int) -> torch.Tensor:
        tensor = read_texture(path, channels=channels)
        expected = self._info[path].size
        if tuple(tensor.shape[1:]) != expected:
            raise TextureError(f"{path}: size {tensor.shape[2]}x{tensor.shape[1]} differs from "
                               f"its header's {expected[1]}x{expected[0]} (file changed?)")
        return tensor

    def expressions(self, stem: str) -> dict[str, torch.Tensor]:
        return {n: self._read(p, 3) for n, p in sorted(self._expr["phone"].get(stem, {}).items())
                if f"expressions/{stem}" not in self.skipped}

    def expressions_studio(self, stem: str) -> dict[str, torch.Tensor]:
        return {n: self._read(p, 3) for n, p in sorted(self._expr["studio"].get(stem, {}).items())
                if f"expressions/{stem}" not in self.skipped}

    def size(self, split: str, kind: str) -> tuple[int, int] | None:
        return self._sizes.get((split, kind))

    def describe(self) -> str:
        return f"FolderSource({str(self.root)!r})"


def _format_problems(root: Path, problems: list[Problem]) -> str:
    if len(problems) == 1:  # the first line a user reads is the problem itself
        problem = str(problems[0])
        where = "" if problem.startswith(str(root)) else f"{root}: "
        return (f"{where}{problem} (texture folder {root}; FolderSource(on_error='skip') "
                "leaves the stems concerned out)")
    first = str(problems[0])
    lines = [f"{first if first.startswith(str(root)) else f'{root}: {first}'} (and "
             f"{len(problems) - 1} more problem(s) in the texture folder {root}; "
             "FolderSource(on_error='skip') leaves the stems concerned out):"]
    lines += [f"  - {p}" for p in problems[:MAX_LISTED]]
    if len(problems) > MAX_LISTED:
        lines.append(f"  ... and {len(problems) - MAX_LISTED} more (run `lift data check {root}`)")
    return "\n".join(lines)


def check_folder(root: str) -> str:
    """Open ``root``, read every texture once, and summarise splits, sizes and problems.

    This is ``lift data check ROOT``. The last line says ``ok`` or how many problems.
    """
    root_path = Path(root)
    lines = [f"texture folder {root_path}"]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            source = FolderSource(root, on_error="skip")
    except TextureError as exc:
        return "\n".join(lines + [f"problems: 1\n  - {exc}"])
    problems = [p.message for p in source.problems]
    # Full decode of every file (headers were checked when opening).
    for kind in KINDS:
        for stem, path in source._files[kind].items():
            try:
                source._read(path, KIND_CHANNELS[kind])
            except TextureError as exc:
                problems.append(str(exc))
    for side in ("phone", "studio"):
        for names in source._expr[side].values():
            for path in names.values():
                try:
                    source._read(path, 3)
                except TextureError as exc:
                    problems.append(str(exc))

    lines.append("files:")
    for kind in KINDS:
        paths = list(source._files[kind].values())
        lines.append(f"  {KIND_DIRS[kind] + '/':<21}{len(paths):>6}  {_describe(source, paths)}")
    for side, sub in EXPRESSION_DIRS.items():
        paths = [p for names in source._expr[side].values() for p in names.values()]
        lines.append(f"  {sub + '/':<21}{len(paths):>6}  {_describe(source, paths)}"
                     f"  ({len(source._expr[side])} stems)")
    lines.append("splits:")
    for split, stems in source.splits().items():
        sizes = ", ".join(f"{kind} {s[1]}x{s[0]}" for kind in ("phone", "studio")
                          if (s := source.size(split, kind)) and kind in SPLIT_KEYS[split])
        lines.append(f"  {split:<14}{len(stems):>6}  from {source.split_sources[split]:<24} "
                     f"{sizes}")
    if problems:
        lines.append(f"problems: {len(problems)}")
        lines += [f"  - {p}" for p in problems]
    else:
        lines.append("problems: none (ok)")
    return "\n".join(lines)


def _describe(source: FolderSource, paths: list[Path]) -> str:
    if not paths:
        return "-"
    infos = [source._info[p] for p in paths]
    sizes = Counter(f"{i.width}x{i.height}" for i in infos)
    kinds = Counter(f"{i.path.suffix.lower()[1:]} {i.dtype}" for i in infos)
    return (", ".join(f"{k} x{n}" for k, n in sizes.most_common()) + "; "
            + ", ".join(f"{k} x{n}" for k, n in kinds.most_common()))
