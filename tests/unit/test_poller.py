"""sandbox.poller: the epoll selector the supervisor, the agent and the probes use in place of
selectors.DefaultSelector, checked against what selectors does for the same calls."""

from __future__ import annotations

import os
import selectors
import socket
import time

import pytest

from sandbox import poller


def test_read_and_write_readiness_as_selectors_reports_it() -> None:
    a, b = socket.socketpair()
    with poller.Selector() as ours, selectors.DefaultSelector() as theirs:
        for sel in (ours, theirs):
            sel.register(a, poller.EVENT_READ | poller.EVENT_WRITE, "a")
        assert [(k.data, m) for k, m in ours.select(0)] == [(k.data, m) for k, m in theirs.select(0)] \
            == [("a", poller.EVENT_WRITE)]
        b.send(b"x")
        assert [(k.data, m) for k, m in ours.select(0)] == [(k.data, m) for k, m in theirs.select(0)] \
            == [("a", poller.EVENT_READ | poller.EVENT_WRITE)]
        b.close()  # hang-up: readable (EOF), as selectors reports EPOLLHUP
        assert {m for _, m in ours.select(0)} == {m for _, m in theirs.select(0)}
    a.close()


def test_register_unregister_modify_get_key() -> None:
    r, w = os.pipe()
    try:
        with poller.Selector() as sel:
            key = sel.register(r, poller.EVENT_READ, ("log", 1))
            assert (key.fd, key.events, key.data, key.fileobj) == (r, poller.EVENT_READ, ("log", 1), r)
            with pytest.raises(KeyError):
                sel.register(r, poller.EVENT_READ)
            with pytest.raises(ValueError):
                sel.register(w, 0)
            with pytest.raises(ValueError):
                sel.register(-1, poller.EVENT_READ)
            assert sel.get_key(r) is key
            assert sel.select(0) == []
            os.write(w, b"x")
            assert [(k.data, m) for k, m in sel.select(0)] == [(("log", 1), poller.EVENT_READ)]
            moved = sel.modify(r, poller.EVENT_READ, "new data")
            assert sel.get_key(r) is moved and moved.data == "new data"
            assert sel.unregister(r) is moved
            with pytest.raises(KeyError):
                sel.get_key(r)
            with pytest.raises(KeyError):
                sel.unregister(r)
    finally:
        os.close(w)
        os.close(r)


def test_a_closed_fd_unregisters_quietly() -> None:
    r, w = os.pipe()
    sel = poller.Selector()
    sel.register(r, poller.EVENT_READ)
    os.close(r)
    os.close(w)
    assert sel.unregister(r).fd == r
    sel.close()


def test_a_closed_file_object_is_found_by_identity() -> None:
    a, b = socket.socketpair()
    with poller.Selector() as sel:
        sel.register(a, poller.EVENT_READ, "sock")
        a.close()  # fileno() is now -1
        assert sel.unregister(a).data == "sock"
    b.close()


def test_timeouts_wait_at_least_what_was_asked() -> None:
    r, w = os.pipe()
    try:
        with poller.Selector() as sel:
            sel.register(r, poller.EVENT_READ)
            for timeout in (0.0004, 0.0021, 0.02):  # below and between epoll's milliseconds
                start = time.monotonic()
                assert sel.select(timeout) == []
                assert time.monotonic() - start >= timeout
            assert sel.select(-1) == []  # a negative timeout polls
    finally:
        os.close(w)
        os.close(r)
