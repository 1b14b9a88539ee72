"""Which connection makes room at the TCP connection cap: a stalled one first."""

from __future__ import annotations

from geodns.server.tcp import STALLED_SCAN, TCPConnection, TCPState


class FakeTransport:
    def __init__(self) -> None:
        self.aborted = False

    def get_extra_info(self, name: str) -> tuple[str, int]:
        return ("127.0.0.1", 5353)

    def abort(self) -> None:
        self.aborted = True


def connection(state: TCPState, stalled: bool) -> TCPConnection:
    conn = TCPConnection(state)
    conn._transport = FakeTransport()  # type: ignore[assignment]
    conn._frame_started = 1.0 if stalled else None
    return conn


def test_a_stalled_connection_makes_room_before_an_older_fresh_one() -> None:
    state = TCPState(handler=lambda data, peer: None, max_connections=3)
    fresh, stalled, other = (connection(state, s) for s in (False, True, False))
    for conn in (fresh, stalled, other):
        state.admit(conn)
    state.admit(connection(state, False))
    assert stalled not in state.connections and fresh in state.connections
    assert stalled._transport.aborted and not fresh._transport.aborted  # type: ignore[union-attr]
    assert state.evicted == 1


def test_without_a_stalled_one_the_head_of_the_line_goes() -> None:
    state = TCPState(handler=lambda data, peer: None, max_connections=2)
    first, second = connection(state, False), connection(state, False)
    state.admit(first)
    state.admit(second)
    state.used(first)  # a complete query moves it to the back
    state.admit(connection(state, False))
    assert first in state.connections and second not in state.connections


def test_the_search_for_a_stalled_one_is_bounded() -> None:
    n = STALLED_SCAN + 3
    state = TCPState(handler=lambda data, peer: None, max_connections=n)
    conns = [connection(state, i == n - 1) for i in range(n)]  # the stalled one is last
    for conn in conns:
        state.admit(conn)
    state.admit(connection(state, False))
    assert conns[0] not in state.connections and conns[-1] in state.connections
