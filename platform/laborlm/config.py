"""Typed configs: YAML + dotted overrides -> frozen dataclasses, strictly, with every problem reported at once.

    laborlm config show jobs/synth_psid.yaml synth.people=500

Rules (STYLE.md): unknown keys are errors (with a "did you mean"), and so are keys repeated in a YAML
mapping (YAML would keep the last silently); fields without defaults are required; override values are parsed
by the field's declared type, never guessed; every problem found goes into one ``ConfigError`` naming the file
and the dotted key, e.g. ``jobs/x.yaml: train.lr: expected float, got 'fast'``, or the override that caused it
(``override train.lr=-1: ...``) rather than the file it overrides.
The dataclass defaults are the embedded defaults, so a config with no YAML at all is valid.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import re
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

import yaml

from laborlm.errors import ConfigError

T = TypeVar("T")
_MISSING = object()
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}
_NONE = {"null", "none", "~", ""}


class _StrictLoader(yaml.SafeLoader):  # type: ignore[misc]  # (PyYAML ships no type hints)
    """``yaml.SafeLoader`` that records every key repeated within one mapping (``duplicates``)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicates: list[str] = []


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        line = key_node.start_mark.line + 1
        try:
            first = seen.setdefault(key, line)
        except TypeError:  # an unhashable key: SafeLoader reports it below
            continue
        if first != line:
            loader.duplicates.append(f"line {line}: duplicate key {key!r} (first on line {first})")
    return typing.cast(dict[Any, Any], yaml.SafeLoader.construct_mapping(loader, node, deep))


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; a missing file, a parse error, a repeated key or a non-mapping top level is a
    ConfigError naming the file (and the line)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config: {exc.strerror}", source=str(path)) from None
    loader = _StrictLoader(text)
    try:
        data = loader.get_single_data()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise ConfigError(f"{where}invalid YAML: {getattr(exc, 'problem', exc)}", source=str(path)) from None
    finally:
        loader.dispose()
    if loader.duplicates:
        raise ConfigError(
            sorted(loader.duplicates, key=lambda d: int(d.split()[1].rstrip(":"))), source=str(path)
        )
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"top level must be a mapping, got {type(data).__name__}", source=str(path))
    return data


def parse_overrides(overrides: Sequence[str]) -> list[tuple[str, str]]:
    """Split ``a.b=value`` strings; a malformed one is a ConfigError."""
    out = []
    bad = []
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            bad.append(f"override {item!r} is not of the form key.path=value")
        else:
            out.append((key.strip(), value))
    if bad:
        raise ConfigError(bad, source="overrides")
    return out


def apply_overrides(cls: type, data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Set dotted keys in a nested dict, each value parsed by the type the dataclass ``cls`` declares there.

    This is the one override function: the CLI and Ray Tune trials both use it.
    """
    problems: list[str] = []
    data = _deepcopy(data)
    pairs: list[tuple[str, str]] = []
    for item in overrides:
        try:
            pairs.extend(parse_overrides([item]))
        except ConfigError as exc:
            problems.extend(exc.problems)
    for key, raw in pairs:
        parts = key.split(".")
        hint: Any = cls
        node = data
        ok = True
        for depth, part in enumerate(parts):
            if not _is_dataclass_type(hint):
                problems.append(f"{key}: '{'.'.join(parts[:depth])}' is not a section")
                ok = False
                break
            hints = _hints(hint)
            if part not in hints:
                problems.append(f"{key}: unknown key{_suggest(part, hints)}")
                ok = False
                break
            hint = hints[part]
            if depth < len(parts) - 1:
                child = node.get(part)
                if not isinstance(child, dict):
                    child = {}
                    node[part] = child
                node = child
        if not ok:
            continue
        try:
            node[parts[-1]] = _parse_text(raw, hint)
        except ValueError as exc:
            problems.append(f"{key}: {exc}")
    if problems:
        raise ConfigError(problems, source="overrides")
    return data


def build(cls: type[T], data: Mapping[str, Any] | None, source: str | None = None) -> T:
    """Build a (nested) frozen dataclass from a mapping, strictly; all problems in one ConfigError."""
    problems: list[str] = []
    obj = _build(cls, dict(data or {}), "", problems)
    if problems:
        raise ConfigError(problems, source=source)
    return typing.cast(T, obj)


def load_config(cls: type[T], path: str | Path | None = None, overrides: Sequence[str] = ()) -> T:
    """YAML file (optional) + overrides -> ``cls``. A ``kind`` key, if present, is checked by the caller.

    A problem with a value an override set is attributed to that override, not to the YAML file.
    """
    data = load_yaml(path) if path is not None else {}
    data.pop("kind", None)
    return build_overridden(cls, data, overrides, str(path) if path is not None else None)


def build_overridden(
    cls: type[T], data: Mapping[str, Any], overrides: Sequence[str], source: str | None
) -> T:
    """``apply_overrides`` then ``build``: a problem with a value an override set names the override (and a
    problem of ``data``'s own names ``source``), for callers that assemble ``data`` themselves."""
    data = apply_overrides(cls, dict(data), overrides)
    try:
        return build(cls, data, source=source)
    except ConfigError as exc:
        if not overrides:
            raise
        attributed = [_attribute(p, source, parse_overrides(overrides)) for p in exc.problems]
        raise ConfigError(attributed) from None


def _attribute(problem: str, source: str | None, overrides: list[tuple[str, str]]) -> str:
    """``problem`` prefixed with what caused it: the override that set its key, else the YAML file.

    A check across the fields of a section (``train: warmup must be < steps``) that an override took part in
    names both the file and the override.
    """
    key = _problem_key(problem)
    setting = [f"{k}={v}" for k, v in overrides if k == key or key.startswith(f"{k}.")]
    if setting:
        return f"override {', '.join(setting)}: {problem}"
    inside = [f"{k}={v}" for k, v in overrides if key == "" or k.startswith(f"{key}.")]
    if inside:
        return f"{source + ' with ' if source else ''}override {', '.join(inside)}: {problem}"
    return f"{source}: {problem}" if source else problem


_KEY = re.compile(r"^[A-Za-z_][\w.\[\]]*$")


def _problem_key(problem: str) -> str:
    """The dotted key a problem is about: ``train.lr: expected ...`` -> ``train.lr``, and a section's check
    naming its field, ``config: people: expected >= 1`` -> ``people``; ``""`` for the whole config."""
    keys = []
    for part in problem.split(": ")[:-1]:
        if not _KEY.match(part):
            break
        keys.append(part)
    if keys and keys[0] == "config":
        keys = keys[1:]
    return ".".join(keys)


def to_dict(config: Any) -> dict[str, Any]:
    """Plain nested dict (paths as strings, tuples as lists): what ``config.yaml`` holds."""
    return typing.cast(dict[str, Any], _plain(dataclasses.asdict(config)))


def flatten(config: Any) -> dict[str, Any]:
    """Dotted-key form (``train.lr``): what MLflow params and Tune search spaces use."""
    out: dict[str, Any] = {}

    def walk(d: dict[str, Any], prefix: str) -> None:
        for k, v in d.items():
            if isinstance(v, dict):
                walk(v, f"{prefix}{k}.")
            else:
                out[f"{prefix}{k}"] = v

    walk(to_dict(config), "")
    return out


def dump_yaml(config: Any, kind: str | None = None) -> str:
    data = to_dict(config)
    if kind is not None:
        data = {"kind": kind, **data}
    return str(yaml.safe_dump(data, sort_keys=False))


def config_hash(config: Any, length: int = 12) -> str:
    """Stable hash of the resolved config; manifests and run names use it."""
    blob = json.dumps(to_dict(config), sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:length]


def default_run_name(kind: str, model: str, seed: int, config: Any) -> str:
    """``<kind>-<model>-s<seed>-<hash6>``: deterministic and readable, so the same config resumes the same run."""
    return f"{kind}-{model}-s{seed}-{config_hash(config, length=6)}"


# --- internals ---------------------------------------------------------------------------------------------


def _deepcopy(d: dict[str, Any]) -> dict[str, Any]:
    return {k: _deepcopy(v) if isinstance(v, dict) else v for k, v in d.items()}


def _plain(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, Path):
        return str(v)
    return v


def _is_dataclass_type(t: Any) -> bool:
    return isinstance(t, type) and dataclasses.is_dataclass(t)


def _hints(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.init}


def _suggest(key: str, options: Mapping[str, Any]) -> str:
    close = difflib.get_close_matches(key, list(options), n=1)
    return f" (did you mean '{close[0]}'?)" if close else f" (known: {', '.join(options)})"


def _type_name(t: Any) -> str:
    origin = typing.get_origin(t)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(t))
    if origin in (Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(t))
    if origin in (tuple, list):
        return f"list of {_type_name(typing.get_args(t)[0])}"
    if t is type(None):
        return "null"
    return getattr(t, "__name__", str(t))


def _build(cls: type, data: dict[str, Any], prefix: str, problems: list[str]) -> Any:
    hints = _hints(cls)
    kwargs: dict[str, Any] = {}
    for key in data:
        if key not in hints:
            problems.append(f"{prefix}{key}: unknown key{_suggest(str(key), hints)}")
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        path = f"{prefix}{f.name}"
        if f.name in data:
            value = _coerce(data[f.name], hints[f.name], path, problems)
            if value is not _MISSING:
                kwargs[f.name] = value
        elif _is_dataclass_type(hints[f.name]) and f.default is dataclasses.MISSING:
            # A nested section left out entirely: build it from its own defaults (so its errors are reported too).
            value = _build(hints[f.name], {}, f"{path}.", problems)
            if value is not _MISSING:
                kwargs[f.name] = value
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            problems.append(f"{path}: missing required value ({_type_name(hints[f.name])})")
    if len(kwargs) < sum(1 for f in dataclasses.fields(cls) if f.init and f.name in data) or any(
        p.startswith(prefix) for p in problems
    ):
        return _MISSING
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        section = prefix.rstrip(".") or "config"
        problems.extend(f"{section}: {p}" for p in exc.problems)
    except (TypeError, ValueError) as exc:
        problems.append(f"{prefix.rstrip('.') or 'config'}: {exc}")
    return _MISSING


def _coerce(value: Any, hint: Any, path: str, problems: list[str]) -> Any:
    """Check and convert a YAML value to the declared type; record a problem and return _MISSING if it fails."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if _is_dataclass_type(hint):
        if not isinstance(value, dict):
            problems.append(f"{path}: expected a section (mapping), got {value!r}")
            return _MISSING
        return _build(hint, value, f"{path}.", problems)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        for a in inner:
            trial: list[str] = []
            out = _coerce(value, a, path, trial)
            if not trial:
                return out
        problems.append(f"{path}: expected {_type_name(hint)}, got {value!r}")
        return _MISSING
    if origin is Literal:
        if value in args:
            return value
        problems.append(f"{path}: expected one of {', '.join(repr(a) for a in args)}, got {value!r}")
        return _MISSING
    if origin in (tuple, list):
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            problems.append(f"{path}: expected {_type_name(hint)}, got {value!r}")
            return _MISSING
        elem = args[0] if args else Any
        items = [_coerce(v, elem, f"{path}[{i}]", problems) for i, v in enumerate(value)]
        if any(x is _MISSING for x in items):
            return _MISSING
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            problems.append(f"{path}: expected a mapping, got {value!r}")
            return _MISSING
        vt = args[1] if len(args) == 2 else Any
        out_d = {str(k): _coerce(v, vt, f"{path}.{k}", problems) for k, v in value.items()}
        return _MISSING if any(v is _MISSING for v in out_d.values()) else out_d
    if hint is Any:
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:  # PyYAML reads "3e-4" as a string (YAML 1.1); a float field accepts it.
                return float(value)
            except ValueError:
                pass
    elif hint is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
    elif hint is Path:
        if isinstance(value, (str, Path)):
            return Path(value)
    elif hint is type(None) and value is None:
        return None
    problems.append(f"{path}: expected {_type_name(hint)}, got {value!r}")
    return _MISSING


def _parse_text(raw: str, hint: Any) -> Any:
    """Parse an override's text by the declared type (never by guessing). Raises ValueError."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    text = raw.strip()
    if origin in (Union, types.UnionType):
        if type(None) in args and text.lower() in _NONE:
            return None
        errors = []
        for a in (a for a in args if a is not type(None)):
            try:
                return _parse_text(raw, a)
            except ValueError as exc:
                errors.append(str(exc))
        raise ValueError(f"expected {_type_name(hint)}, got {raw!r}")
    if origin is Literal:
        for a in args:
            if str(a) == text:
                return a
        raise ValueError(f"expected one of {', '.join(repr(a) for a in args)}, got {raw!r}")
    if origin in (tuple, list):
        if text.startswith("["):
            items = yaml.safe_load(text)
            if not isinstance(items, list):
                raise ValueError(f"expected a list, got {raw!r}")
            items = [str(i) for i in items]
        else:
            items = [s.strip() for s in text.split(",") if s.strip()]
        elem = args[0] if args else str
        parsed = [_parse_text(i, elem) for i in items]
        return tuple(parsed) if origin is tuple else parsed
    if _is_dataclass_type(hint) or origin is dict:
        value = yaml.safe_load(text)
        if not isinstance(value, dict):
            raise ValueError(f"expected a mapping, got {raw!r}")
        return value
    if hint is bool:
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise ValueError(f"expected bool, got {raw!r}")
    if hint is int:
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"expected int, got {raw!r}") from None
    if hint is float:
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"expected float, got {raw!r}") from None
    if hint is Path:
        return Path(text)
    if hint is str or hint is Any:
        return raw
    raise ValueError(f"cannot parse {raw!r} as {_type_name(hint)}")
