"""docs/components.md documents every component base class with its exact contract.

For every name in ``lift.components.__all__`` the page holds a Python block with a line
``class Name...`` followed by:

* the exact rendered signature (``def name(sig)``) of every method the class defines itself
  (public methods, properties and ``__init__``; abstract or not), and no ``def`` of a method
  the class does not define;
* ``kind = '<kind>'`` for the registrable kinds;
* every annotated class attribute as ``name: annotation`` (with ``= default`` where the class
  sets one); for the ``Phase`` dataclass these are its fields.

So the docs cannot drift from ``lift/components/``. Signatures are rendered as
``tests/test_hooks.py`` renders the hook signatures (``def name`` + ``inspect.signature`` with
the quotes of the string annotations removed; ``from __future__ import annotations`` makes
every annotation a string); defaults keep their ``repr`` (``noise_mode: str = 'const'``), so a
documented signature stays valid Python. For every hook the two renderings agree (tested).
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from pathlib import Path

import pytest

import lift.components as components
from lift import hookspecs

DOCS = Path(__file__).resolve().parents[1] / "docs" / "components.md"


class _Raw:
    """An annotation string rendered without quotes."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return self.text


def _unquoted(annotation):
    return _Raw(annotation) if isinstance(annotation, str) else annotation


def rendered_signature(name: str, func) -> str:
    """``def name(sig)``: string annotations unquoted, defaults as their repr."""
    sig = inspect.signature(func)
    params = [p.replace(annotation=_unquoted(p.annotation)) for p in sig.parameters.values()]
    sig = sig.replace(parameters=params, return_annotation=_unquoted(sig.return_annotation))
    return f"def {name}{sig}"


def own_methods(cls: type) -> dict[str, object]:
    """Methods the class body defines: public functions / properties / static and class
    methods, and ``__init__`` (what ``dataclass`` generates is not the class's own)."""
    out: dict[str, object] = {}
    for name, value in cls.__dict__.items():
        if name.startswith("_") and name != "__init__":
            continue
        if dataclasses.is_dataclass(cls) and name == "__init__":
            continue
        if isinstance(value, property):
            value = value.fget
        elif isinstance(value, (staticmethod, classmethod)):
            value = value.__func__
        if inspect.isfunction(value):
            out[name] = value
    return out


def own_attributes(cls: type) -> list[str]:
    """``name: annotation`` (``= repr(default)`` where the class body sets a default) of every
    annotated class attribute (dataclass fields included)."""
    lines = []
    for name, annotation in cls.__dict__.get("__annotations__", {}).items():
        text = f"{name}: {annotation}"
        if name in cls.__dict__ and not isinstance(cls.__dict__[name], property):
            text += f" = {cls.__dict__[name]!r}"
        lines.append(text)
    return lines


def class_sections(text: str) -> dict[str, str]:
    """Class name -> the text from its ``class Name`` line (column 0, inside a fenced block)
    to the next ``class`` line or the end of the block."""
    sections: dict[str, str] = {}
    for block in re.findall(r"```python\n(.*?)```", text, flags=re.S):
        parts = re.split(r"^(?=class \w+)", block, flags=re.M)
        for part in parts:
            match = re.match(r"class (\w+)", part)
            if match:
                if match.group(1) in sections:
                    raise AssertionError(f"class {match.group(1)} is documented twice")
                sections[match.group(1)] = part
    return sections


def problems(text: str) -> list[str]:
    """Everything about ``text`` that contradicts ``lift.components``; [] when it agrees."""
    out = []
    sections = class_sections(text)
    for name in components.__all__:
        cls = getattr(components, name)
        section = sections.get(name)
        if section is None:
            out.append(f"{name}: no ```python block with a line 'class {name}...'")
            continue
        lines = {line.strip() for line in section.splitlines()}
        methods = own_methods(cls)
        for method, func in methods.items():
            sig = rendered_signature(method, func)
            if sig not in lines:
                out.append(f"{name}: lacks the exact signature line\n    {sig}")
        documented = set(re.findall(r"^\s*def (\w+)\(", section, flags=re.M))
        extra = sorted(documented - set(methods))
        if extra:
            out.append(f"{name}: documents methods the class does not define: {extra}")
        kind = cls.__dict__.get("kind")
        if kind is not None and f"kind = {kind!r}" not in lines:
            out.append(f"{name}: lacks the line  kind = {kind!r}")
        for attribute in own_attributes(cls):
            if attribute not in lines:
                out.append(f"{name}: lacks the attribute line  {attribute}")
    return out


def test_components_md_has_every_base_class_with_its_exact_contract():
    found = problems(DOCS.read_text())
    assert not found, "docs/components.md disagrees with lift/components/:\n" + "\n".join(found)


def test_every_base_class_is_checked():
    # Phase and every kind's base class; a new export is checked as soon as it exists.
    assert {"Phase", "Translator", "StyleGenerator", "ImageDiscriminator", "LatentSampler",
            "Upsampler", "GradientOperator", "IdentityEncoder", "PerceptualDistance", "Metric",
            "ColourTransform"} <= set(components.__all__)
    assert own_methods(components.Translator)  # the rule finds the methods at all
    assert "lazy_terms: tuple[str, ...] = ()" in own_attributes(components.Phase)


def _first_signature() -> str:
    cls = components.StyleGenerator
    return rendered_signature("synthesize", own_methods(cls)["synthesize"])


@pytest.mark.parametrize("edit", [
    "rename a parameter", "change a default", "drop a method", "add a method",
    "change an attribute",
])
def test_a_drifted_doc_is_caught(edit):
    text = DOCS.read_text()
    sig = _first_signature()
    assert sig in text
    if edit == "rename a parameter":
        text = text.replace(sig, sig.replace("ws:", "codes:"))
    elif edit == "change a default":
        text = text.replace(sig, sig.replace("'const'", "'random'"))
    elif edit == "drop a method":
        text = text.replace(sig, "")
    elif edit == "add a method":
        text = text.replace(sig, sig + "\n    def resample(self, ws: torch.Tensor) -> None")
    elif edit == "change an attribute":
        assert "    num_ws: int\n" in text
        text = text.replace("    num_ws: int\n", "    num_ws: int | None\n", 1)
    found = problems(text)
    assert found and all(p.startswith("StyleGenerator:") for p in found), found


def test_rendering_agrees_with_the_hook_docs_rendering():
    # tests/test_hooks.py: f"def {name}{str(inspect.signature(f)).replace(chr(39), '')}"
    for name, func in inspect.getmembers(hookspecs, inspect.isfunction):
        if name.startswith("lift_"):
            hooks_style = f"def {name}{str(inspect.signature(func)).replace(chr(39), '')}"
            assert rendered_signature(name, func) == hooks_style
