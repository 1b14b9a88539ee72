"""YAML documents with the line of every key, so that errors can say file:line.

Scalars follow the YAML 1.2 core schema rather than PyYAML's YAML 1.1: `NO`
(Norway) and `on` stay strings and `1:2:3` is not a base-60 number, which
matters for country lists and IPv6 addresses.

Parsing uses libyaml's C composer (PyYAML's CSafeLoader) when PyYAML was built with it:
about ten times faster than the pure-Python one (0.07 s against 0.76 s of CPU for a zone of
10,000 records, bench/zonebuild.py), and its nodes carry the same start marks, so every
`file:line` is the same. Only the wording of a syntax error differs (libyaml's "did not find
expected key" for PyYAML's "expected <block end>"). Without libyaml the pure-Python loader
does it all.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from geodns.errors import ConfigError, ConfigErrors

Path = tuple[str | int, ...]

_INT = re.compile(r"[-+]?[0-9]+")
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_TRUE = {"true", "True", "TRUE"}
_FALSE = {"false", "False", "FALSE"}
_NULL = {"", "~", "null", "Null", "NULL"}

Loader = Any  # a PyYAML loader class: SafeLoader or CSafeLoader
PURE_LOADER: Loader = yaml.SafeLoader
FAST_LOADER: Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml, if built with it

_DEFAULT_TAGS = {
    yaml.ScalarNode: "tag:yaml.org,2002:str",
    yaml.SequenceNode: "tag:yaml.org,2002:seq",
    yaml.MappingNode: "tag:yaml.org,2002:map",
}


class _NoImplicitTags:
    """Composing without PyYAML's implicit tags: a value's type comes from _scalar (the YAML
    1.2 core schema), never from its node's tag, and resolving them (PyYAML's regular
    expressions tried on every plain scalar, a path walk for every node) was half of
    libyaml's composing time. An untagged node gets the plain tag of its kind."""

    def resolve(self, kind: type, value: Any, implicit: Any) -> str:
        return _DEFAULT_TAGS[kind]

    def descend_resolver(self, current_node: Any, current_index: Any) -> None:
        pass

    def ascend_resolver(self) -> None:
        pass


_UNTAGGED: dict[Loader, Loader] = {}


def _untagged(loader: Loader) -> Loader:
    """`loader` composing without implicit tags (see _NoImplicitTags)."""
    cls = _UNTAGGED.get(loader)
    if cls is None:
        cls = _UNTAGGED[loader] = type(loader.__name__, (_NoImplicitTags, loader), {})
    return cls


@dataclass
class Document:
    """A parsed YAML file: its data, and the line where each path starts."""

    file: str
    data: Any
    lines: dict[Path, int] = field(default_factory=dict)

    def line(self, path: Path) -> int:
        """The line of `path`, or of its nearest ancestor that has one."""
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get((), 1)

    def error(self, path: Path, message: str) -> ConfigError:
        return ConfigError(message, self.file, self.line(path), format_path(path))


def format_path(path: Path) -> str:
    """('records', 'www', 'A', 1) -> 'records.www.A[1]'."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _scalar(node: yaml.ScalarNode) -> Any:
    value = node.value
    # Quoted or block scalars are always strings. A plain one has style None from the
    # pure-Python composer and "" from libyaml's.
    if node.style:
        return value
    if value in _NULL:
        return None
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    if _INT.fullmatch(value):
        return int(value)
    if _FLOAT.fullmatch(value):
        return float(value)
    return value


def read_yaml_file(path: str | os.PathLike[str]) -> Document:
    """Read and parse a YAML file, or raise ConfigErrors naming the file (and line if known)."""
    file = os.fspath(path)
    return parse_yaml_text(read_text_file(file), file)


def read_text_file(file: str) -> str:
    """A config file's text, or ConfigErrors naming the file: unreadable, or not UTF-8."""
    try:
        with open(file, encoding="utf-8") as fh:
            return fh.read()
    except OSError as exc:
        raise ConfigErrors([ConfigError(exc.strerror or str(exc), file)]) from exc
    except UnicodeDecodeError as exc:
        raise ConfigErrors([ConfigError(f"not UTF-8 text: {exc.reason}", file)]) from exc


def parse_yaml_text(text: str, file: str) -> Document:
    """load_yaml with its error as ConfigErrors, as read_yaml_file raises it."""
    try:
        return load_yaml(text, file)
    except ConfigError as exc:
        raise ConfigErrors([exc]) from exc


def load_yaml(text: str, file: str, loader: Loader = FAST_LOADER) -> Document:
    """Parse `text`; raise ConfigError naming file and line on a syntax error or duplicate key."""
    try:
        node = yaml.compose(text, Loader=_untagged(loader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        raise ConfigError(f"YAML syntax: {exc.problem or exc}", file, line) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"YAML syntax: {exc}", file) from exc
    doc = Document(file, None)
    if node is None:
        return doc
    doc.data = _build(node, (), doc)
    return doc


def _build(node: yaml.Node, path: Path, doc: Document) -> Any:
    doc.lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.ScalarNode):
        return _scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, (*path, i), doc) for i, item in enumerate(node.value)]
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise ConfigError(
                    "mapping keys must be plain strings", doc.file, key_node.start_mark.line + 1
                )
            key = key_node.value  # keys are names: `NO`, `1` and `true` stay as written
            child = (*path, key)
            if key in out:
                raise ConfigError(
                    f"duplicate key {key!r}",
                    doc.file,
                    key_node.start_mark.line + 1,
                    format_path(child),
                )
            doc.lines[child] = key_node.start_mark.line + 1
            out[key] = _build(value_node, child, doc)
        return out
    raise ConfigError(f"unsupported YAML node {node.tag}", doc.file, node.start_mark.line + 1)
