"""Reading and writing registry YAML fast enough for an England-sized file (7,000 practices).

`yaml.safe_dump` spends most of its time in PyYAML's generic representer (alias bookkeeping and
type dispatch for every one of ~300,000 nodes) and its pure-Python emitter. `dump_yaml` builds
the node tree directly for plain JSON-like data (anything else goes through the representer
exactly as before) and emits with libyaml where PyYAML has it. For a registry the text is
byte-identical to `yaml.safe_dump(document, sort_keys=False, allow_unicode=True)`; libyaml
spells a few things differently (it escapes characters beyond the Basic Multilingual Plane and
NEL, writes an empty key without `?`, ends a lone scalar without `...`), always reading back as
the same data (tests/connectors/test_registry_yaml.py checks both by property).
`load_yaml` parses with libyaml and leaves a document libyaml refuses to the pure-Python
parser, whose error points at the line with a caret.

Both pause the cyclic garbage collector while they build their ~300,000 short-lived objects
(none of them in a cycle): left on, its repeated passes over the growing heap cost more than
the work itself (0.7 s of 2.2 s CPU to write the England registry).
"""

from __future__ import annotations

import gc
import io
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

_DUMPER: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_STR, _INT, _BOOL, _NULL = (f"tag:yaml.org,2002:{t}" for t in ("str", "int", "bool", "null"))
_MAP, _SEQ = "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"


@contextmanager
def _collector_paused() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def dump_yaml(document: Any) -> str:
    """`yaml.safe_dump(document, sort_keys=False, allow_unicode=True)`, several times faster."""
    stream = io.StringIO()
    dumper = _DUMPER(stream, default_flow_style=False, sort_keys=False, allow_unicode=True)
    with _collector_paused():
        try:
            dumper.open()
            dumper.serialize(_node(document, dumper))
            dumper.close()
        finally:
            dumper.dispose()
    return stream.getvalue()


def _node(value: Any, dumper: Any) -> Node:
    # Exact types only: a subclass (a str enum, say) goes to the representer, which decides.
    kind = type(value)
    if kind is str:
        return ScalarNode(_STR, value)
    if kind is dict:
        pairs = [(_node(k, dumper), _node(v, dumper)) for k, v in value.items()]
        return MappingNode(_MAP, pairs, flow_style=False)
    if kind is list:
        return SequenceNode(_SEQ, [_node(item, dumper) for item in value], flow_style=False)
    if kind is bool:
        return ScalarNode(_BOOL, "true" if value else "false")
    if kind is int:
        return ScalarNode(_INT, str(value))
    if value is None:
        return ScalarNode(_NULL, "null")
    node: Node = dumper.represent_data(value)
    return node


def load_yaml(text: str) -> Any:
    """`yaml.safe_load(text)` through libyaml; on a parse error the pure-Python parser decides."""
    with _collector_paused():
        try:
            return yaml.load(text, Loader=_LOADER)
        except yaml.YAMLError:
            if _LOADER is yaml.SafeLoader:
                raise
            return yaml.load(text, Loader=yaml.SafeLoader)
