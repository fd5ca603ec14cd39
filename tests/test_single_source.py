"""Each constant and table has one home, and the package has no import cycle.

The C headers are the home of the constants C uses (the event kinds, the TCP
states, the masks of states, the defaults, the sock_diag attribute numbers);
Python reads them through cffi (``tcpevent._enums``, ``tcpevent._core``). The
address families have one Python table (``tcpevent.family``). These tests
look through the package's source for the known ways those tables used to be
copied, so that a copy coming back fails here.
"""

from __future__ import annotations

import ast
import io
import tokenize
from collections.abc import Iterator
from pathlib import Path

import pytest

import tcpevent
from tcpevent import _core, _enums, event

PACKAGE = Path(tcpevent.__file__).resolve().parent
SOURCES = sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def module_name(path: Path, root: Path = PACKAGE) -> str:
    parts = [root.name, *path.relative_to(root).with_suffix("").parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def top_level_imports(tree: ast.Module) -> Iterator[ast.Import | ast.ImportFrom]:
    """The imports run when the module is imported: in its body, in ``if``,
    ``try``, ``with`` and class bodies, not in functions nor under
    ``if TYPE_CHECKING:``."""
    todo: list[ast.stmt] = list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If):
            todo += node.orelse if _is_type_checking(node.test) else [*node.body, *node.orelse]
        elif isinstance(node, ast.Try):
            todo += [*node.body, *node.orelse, *node.finalbody]
            for handler in node.handlers:
                todo += handler.body
        elif isinstance(node, (ast.With, ast.ClassDef)):
            todo += node.body


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    """Module -> the modules of the package it imports at its top level.

    ``from pkg import name`` is an edge to ``pkg.name`` when that is a module,
    else to ``pkg`` (a name its ``__init__`` defines). The implicit import of
    a module's parent packages is left out: every package has it.
    """
    paths = sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)
    modules = {module_name(p, root): p for p in paths}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges: set[str] = set()
        for node in top_level_imports(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                edges |= {a.name for a in node.names if a.name in modules}
                continue
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            if base not in modules:
                continue
            for alias in node.names:
                full = f"{base}.{alias.name}"
                edges.add(full if full in modules else base)
        edges.discard(name)
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` (its modules, the first repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_cycle_finder_finds_cycles() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"b2", "c"}, "b2": set(), "c": {"b"}}) == ["b", "c", "b"]


def test_the_import_graph_sees_the_package() -> None:
    graph = import_graph()
    assert {"tcpevent._core", "tcpevent._convert"} <= graph["tcpevent.tracer"]
    assert "tcpevent.abi" in graph["tcpevent.event"]  # from tcpevent import abi
    assert "tcpevent.cli.common" in graph["tcpevent.cli.command"]


def test_no_import_cycle_in_the_package() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


# ---- what is read from the headers -----------------------------------------------


def test_tcp_states_are_the_headers() -> None:
    c_states = _enums.enum_members("enum tcpevent_tcp_state", "TCPEVENT_TCP_")
    assert c_states["ESTABLISHED"] == 1 and c_states["CLOSE"] == 7  # the kernel's values
    assert {s.name: s.value for s in tcpevent.TcpState} == {"UNKNOWN": 0, **c_states}


def test_the_type_checkers_tcp_states_are_the_headers() -> None:
    """event.py declares TcpState's names for type checkers only (under
    ``if TYPE_CHECKING:``); they must be the members made from the header."""
    tree = ast.parse((PACKAGE / "event.py").read_text())
    declared = [
        [t.id for stmt in cls.body if isinstance(stmt, ast.Assign) for t in stmt.targets]
        for node in tree.body
        if isinstance(node, ast.If) and _is_type_checking(node.test)
        for cls in node.body
        if isinstance(cls, ast.ClassDef) and cls.name == "TcpState"
    ]
    assert declared == [[s.name for s in tcpevent.TcpState]]


def test_event_kinds_are_the_headers() -> None:
    kinds = _enums.enum_members("enum tcpevent_kind", "TCPEVENT_KIND_")
    assert {name.lower(): value for name, value in kinds.items()} == _enums.KINDS
    assert _enums.EVENT_BITS == {
        "close": _core.lib.TCPEVENT_EVENT_CLOSE,
        "connect": _core.lib.TCPEVENT_EVENT_CONNECT,
        "accept": _core.lib.TCPEVENT_EVENT_ACCEPT,
        "retransmit": _core.lib.TCPEVENT_EVENT_RETRANSMIT,
        "reset": _core.lib.TCPEVENT_EVENT_RESET,
        "drop": _core.lib.TCPEVENT_EVENT_DROP,
    }
    from tcpevent._options import EVENT_KINDS
    from tcpevent.exporter.metrics import EVENT_KINDS as EXPORTED

    assert EVENT_KINDS == ("close", "connect", "accept", "retransmit", "reset", "drop")
    assert set(EXPORTED) == set(EVENT_KINDS)


def test_defaults_are_the_headers() -> None:
    assert tcpevent.DEFAULT_QUEUE_SIZE == _core.lib.TCPEVENT_DEFAULT_QUEUE_SIZE
    assert tcpevent.DEFAULT_RING_SIZE == _core.lib.TCPEVENT_DEFAULT_RING_SIZE
    assert tcpevent.DEFAULT_MAX_SOCKETS == _core.lib.TCPEVENT_DEFAULT_MAX_SOCKETS
    import inspect

    params = inspect.signature(tcpevent.Tracer).parameters
    assert params["queue_size"].default == _core.lib.TCPEVENT_DEFAULT_QUEUE_SIZE
    assert params["ring_size"].default == _core.lib.TCPEVENT_DEFAULT_RING_SIZE
    assert params["max_sockets"].default == _core.lib.TCPEVENT_DEFAULT_MAX_SOCKETS


def test_sock_diag_attributes_are_the_kernels() -> None:
    from tcpevent import _conn_convert

    assert _conn_convert._ATTR_CONG == _core.lib.INET_DIAG_CONG == 4
    assert _conn_convert._ATTR_CGROUP_ID == _core.lib.INET_DIAG_CGROUP_ID == 21


def test_connection_timers_and_shutdown_are_the_headers() -> None:
    from tcpevent import _conn_convert

    timers = _enums.enum_members("enum tcpevent_conn_timer", "TCPEVENT_TIMER_")
    assert timers == {  # the kernel's idiag_timer values
        "NONE": 0,
        "RETRANSMIT": 1,
        "KEEPALIVE": 2,
        "TIME_WAIT": 3,
        "ZERO_WINDOW_PROBE": 4,
    }
    assert _conn_convert._TIMERS == {
        0: None,
        1: "retransmit",
        2: "keepalive",
        3: "time_wait",
        4: "zero_window_probe",
    }
    assert _conn_convert._SHUTDOWN_ABSENT == _core.lib.TCPEVENT_SHUTDOWN_ABSENT == 0xFF


def test_one_family_table() -> None:
    from tcpevent import family

    assert event.FAMILIES is family.FAMILIES
    assert family.FAMILY_NAMES == {2: "AF_INET", 10: "AF_INET6"}
    assert family.FAMILY_LABELS == {2: "ipv4", 10: "ipv6"}


# ---- no copy of them in the source --------------------------------------------------


def _trees() -> Iterator[tuple[str, ast.Module]]:
    for path in SOURCES:
        yield str(path.relative_to(PACKAGE.parent)), ast.parse(path.read_text(), str(path))


def _code_tokens(path: Path) -> list[str]:
    """The source's tokens without comments, strings (docstrings) and layout."""
    skip = {tokenize.COMMENT, tokenize.STRING, tokenize.NL, tokenize.NEWLINE}
    skip |= {tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER}
    for name in ("FSTRING_START", "FSTRING_MIDDLE", "FSTRING_END"):  # Python 3.12+
        if hasattr(tokenize, name):
            skip.add(getattr(tokenize, name))
    tokens = tokenize.generate_tokens(io.StringIO(path.read_text()).readline)
    return [t.string for t in tokens if t.type not in skip]


@pytest.mark.parametrize(
    "literal",
    [("65536",), ("4", "<<", "20"), ("1", "<<", "24"), ("1", "<<", "30"), ("0xFFFFFFFF",)],
    ids=lambda t: " ".join(t),
)
def test_no_default_or_limit_written_again(literal: tuple[str, ...]) -> None:
    """The defaults and limits of the options are tcpevent.h's (TCPEVENT_DEFAULT_*,
    TCPEVENT_MAX_*, TCPEVENT_STATES_ALL), read through cffi in tcpevent._core."""
    n = len(literal)
    found = []
    for path in SOURCES:
        tokens = [t.lower() for t in _code_tokens(path)]
        want = [t.lower() for t in literal]
        if any(tokens[i : i + n] == want for i in range(len(tokens) - n + 1)):
            found.append(str(path.relative_to(PACKAGE.parent)))
    assert not found, f"{' '.join(literal)} written in {found}"


TCP_STATE_NAMES = frozenset(_enums.TCP_STATES)
KIND_NAMES = frozenset(_enums.KINDS)


def _strings(nodes: list[ast.expr | None]) -> list[str]:
    return [n.value for n in nodes if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def _ints(nodes: list[ast.expr | None]) -> list[int]:
    return [n.value for n in nodes if isinstance(n, ast.Constant) and type(n.value) is int]


def _collections(tree: ast.Module) -> Iterator[tuple[int, list[ast.expr | None]]]:
    """Every dict, set, list and tuple display: its line and its items (a
    dict's keys and values). Not the values of a ``Literal[...]`` type: the
    type checker's view, which event.py checks against the C enums at import."""
    literal_types = {
        id(node.slice)
        for node in ast.walk(tree)
        if isinstance(node, ast.Subscript)
        and isinstance(node.value, ast.Name)
        and node.value.id == "Literal"
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            yield node.lineno, [*node.keys, *node.values]
        elif isinstance(node, (ast.Set, ast.List, ast.Tuple)) and id(node) not in literal_types:
            yield node.lineno, list(node.elts)


def test_no_tcp_state_table_but_the_headers() -> None:
    """No ``ESTABLISHED = 1``, no ``{1: "ESTABLISHED", ...}``, no literal set of
    ``TcpState.X`` members (STATES_CONNECTED is TCPEVENT_STATES_CONNECTED)."""
    found = []
    for where, tree in _trees():
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Assign)
                and isinstance(node.value, ast.Constant)
                and type(node.value.value) is int
                and any(isinstance(t, ast.Name) and t.id in TCP_STATE_NAMES for t in node.targets)
            ):
                found.append(f"{where}:{node.lineno}")
        for line, items in _collections(tree):
            members = [
                n for n in items if isinstance(n, ast.Attribute) and n.attr in TCP_STATE_NAMES
            ]
            named = [s for s in _strings(items) if s in TCP_STATE_NAMES]
            if len(members) >= 3 or (len(named) >= 3 and _ints(items)):
                found.append(f"{where}:{line}")
    assert not found, f"a TCP state table outside tcpevent_conn.h: {found}"


def test_no_event_kind_table_but_the_headers() -> None:
    """No literal list of three or more kinds, and the TCPEVENT_EVENT_* bits
    are read in one place."""
    found = []
    for where, tree in _trees():
        for line, items in _collections(tree):
            if len([s for s in _strings(items) if s in KIND_NAMES]) >= 3:
                found.append(f"{where}:{line}")
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr.startswith("TCPEVENT_EVENT_"):
                found.append(f"{where}:{node.lineno}")
    assert not found, f"event kinds written outside tcpevent_record.h/tcpevent.h: {found}"


def test_no_family_table_but_one() -> None:
    """Families: only tcpevent/family.py maps them (no ``{2: "IPv4", 10: "IPv6"}``,
    no ``{"ipv4": socket.AF_INET}``)."""
    families = {"AF_INET", "AF_INET6"}
    found = []
    for where, tree in _trees():
        if where == "tcpevent/family.py":
            continue
        for line, items in _collections(tree):
            unwrapped = [  # int(socket.AF_INET) -> socket.AF_INET
                n.args[0] if isinstance(n, ast.Call) and len(n.args) == 1 else n for n in items
            ]
            afs = [n for n in unwrapped if isinstance(n, ast.Attribute) and n.attr in families]
            if afs or {2, 10} <= set(_ints(items)):
                found.append(f"{where}:{line}")
    assert not found, f"an address family table outside tcpevent/family.py: {found}"


def test_no_sock_diag_attribute_number_written() -> None:
    """The INET_DIAG_* numbers are <linux/inet_diag.h>'s, read through cffi;
    the timer names are enum tcpevent_conn_timer's."""
    timer_names = {"retransmit", "keepalive", "time_wait", "zero_window_probe"}
    found = []
    for where, tree in _trees():
        for line, items in _collections(tree):
            if len(timer_names & set(_strings(items))) >= 2:
                found.append(f"{where}:{line}")
        for node in ast.walk(tree):
            if (
                isinstance(node, (ast.Assign, ast.AnnAssign))
                and isinstance(node.value, ast.Constant)
                and type(node.value.value) is int
            ):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names = [t.id for t in targets if isinstance(t, ast.Name)]
                if any(n.startswith("_ATTR_") or "INET_DIAG" in n for n in names):
                    found.append(f"{where}:{node.lineno}")
    assert not found, f"an INET_DIAG attribute number or timer table written: {found}"


def test_one_ctypes_mirror_of_the_legacy_headers() -> None:
    """The C-type-to-ctypes table (with which abi.py and udp_abi.py mirror
    their structs and type their calls) is tcpevent/_legacy_ctypes.py's."""
    c_types = {"uint16_t", "uint32_t", "uint64_t", "unsigned int"}
    found = []
    for where, tree in _trees():
        if where == "tcpevent/_legacy_ctypes.py":
            continue
        for node in ast.walk(tree):
            if not isinstance(node, ast.Dict):
                continue
            ctypes_values = [
                v for v in node.values if isinstance(v, ast.Attribute) and v.attr.startswith("c_")
            ]
            if len(c_types & set(_strings(list(node.keys)))) >= 2 and ctypes_values:
                found.append(f"{where}:{node.lineno}")
    assert not found, f"a C type to ctypes table outside _legacy_ctypes.py: {found}"
