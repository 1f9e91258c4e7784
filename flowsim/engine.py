"""The lean engine under the model: a first-come-first-served pool of places and an inlined
SimPy event loop that also takes arrivals from a sorted list. No domain knowledge here.

It drives SimPy's ``Environment`` through its private heap (``_queue`` of ``(time, priority, id,
event)``, ``_now``, ``_eid``), which is what makes it three times faster than idiomatic SimPy;
those are not SimPy's public API, so pyproject allows only the SimPy minor versions it was tested
with (4.1), and ``tests/test_engine.py`` checks it against plain SimPy and the pool's properties.
"""

from __future__ import annotations

import heapq
import math
from collections import deque

import simpy

_INF = math.inf


class Pool:
    """Places in a care setting, handed out first come first served.

    ``request`` takes a free place at once (returns ``None``, no event and no yield) or returns an
    event that succeeds when a place is handed over. A released place goes straight to the next
    waiter. Capacity may change: a cut lets current occupants finish (no one is evicted).

    A place whose release time is known when it is taken (``hold_until``) costs no event: the
    release is kept in a heap and applied when the pool is next asked, and turned into a real
    wake-up event only while someone is waiting for a place.
    """

    __slots__ = ("env", "capacity", "busy", "waiters", "due", "wake_at", "open")

    def __init__(self, env: simpy.Environment, capacity: int) -> None:
        self.env = env
        self.capacity = capacity
        self.busy = 0
        self.waiters: deque[simpy.Event] = deque()
        self.due: list[float] = []
        self.wake_at = _INF
        self.open = True

    def take(self) -> bool:
        """Take a place now if one is free and no one is waiting; no event either way."""
        if self.due:
            self._flush()
        if self.busy < self.capacity and not self.waiters and self.open:
            self.busy += 1
            return True
        return False

    def request(self) -> simpy.Event | None:
        if self.due:
            self._flush()
        if self.busy < self.capacity and not self.waiters and self.open:
            self.busy += 1
            return None
        ev = self.env.event()
        self.waiters.append(ev)
        self._schedule_wake()
        return ev

    def hold_until(self, t: float) -> None:
        """The place just taken is given back at time ``t``."""
        heapq.heappush(self.due, t)
        if self.waiters:
            self._schedule_wake()

    def cancel(self, ev: simpy.Event) -> None:
        """Withdraw a request; a place already handed over is given back."""
        if ev.triggered:
            self.release()
        else:
            self.waiters.remove(ev)

    def release(self) -> None:
        self.busy -= 1
        self._hand_over()

    def set_capacity(self, capacity: int) -> None:
        self._flush()
        self.capacity = capacity
        self._hand_over()

    def set_open(self, is_open: bool) -> None:
        """Open or close the door: while closed no one is taken in; occupants stay."""
        self.open = is_open
        if is_open:
            self._flush()
            self._hand_over()

    def _flush(self) -> None:
        due = self.due
        now = self.env._now
        while due and due[0] <= now:
            heapq.heappop(due)
            self.busy -= 1

    def _schedule_wake(self) -> None:
        if self.due and self.due[0] < self.wake_at:
            self.wake_at = self.due[0]
            self.env.timeout(self.wake_at - self.env._now).callbacks.append(self._wake)

    def _wake(self, _event) -> None:
        self.wake_at = _INF
        self._flush()
        self._hand_over()
        if self.waiters:
            self._schedule_wake()

    def _hand_over(self) -> None:
        if not self.open:
            return
        waiters = self.waiters
        while waiters and self.busy < self.capacity:
            self.busy += 1
            waiters.popleft().succeed()


class _Started:
    _value = None


_STARTED = _Started()


class Process:
    """A generator driven by the events it yields: ``simpy.Process`` without what the model never
    uses (a process is never waited on, interrupted or failed), so ending schedules no event.

    It starts as SimPy's does, through an urgent event at the current time; or, with ``now``, at
    once, before the caller goes on (for a patient who arrives: nothing else can happen at that
    instant, barring exact ties, so the order of events is the same, and an event is saved).
    """

    __slots__ = ("send",)

    def __init__(self, env: simpy.Environment, generator, now: bool = False) -> None:
        self.send = generator.send
        if now:
            self.resume(_STARTED)
            return
        start = simpy.Event(env)
        start._ok, start._value = True, None
        start.callbacks.append(self.resume)
        heapq.heappush(env._queue, (env._now, simpy.events.URGENT, next(env._eid), start))

    def resume(self, event: simpy.Event) -> None:
        send = self.send
        while True:
            try:
                event = send(event._value)
            except StopIteration:
                return
            if event.callbacks is not None:  # not yet processed: wait for it
                event.callbacks.append(self.resume)
                return


def at(env: simpy.Environment, t: float) -> simpy.Event:
    """An event that happens at the absolute time ``t`` (normal priority, like a timeout)."""
    ev = simpy.Event(env)
    ev._ok, ev._value = True, None
    heapq.heappush(env._queue, (t, simpy.events.NORMAL, next(env._eid), ev))
    return ev


def run_until(
    env: simpy.Environment, until: float, arrivals: list[float], arrive, first: int = 0
) -> None:
    """Process events and arrivals before ``until``, in time order.

    ``Environment.run(until)`` with the per-event method calls inlined, and with arrivals (known
    in advance, sorted) taken from their own list rather than scheduled as events: together about
    a third of the engine's work. ``arrive(first + k)`` is called for the k-th arrival of the list.
    Events at exactly ``until`` are not processed (as in SimPy), so a run can go on in segments;
    a failed event that no one handled is raised.
    """
    queue = env._queue
    pop = heapq.heappop
    inf = math.inf
    n = len(arrivals)
    k = 0
    next_arrival = arrivals[0] if n else inf
    while True:
        next_event = queue[0][0] if queue else inf
        if next_arrival <= next_event:
            if next_arrival >= until:
                break
            env._now = next_arrival
            arrive(first + k)
            k += 1
            next_arrival = arrivals[k] if k < n else inf
            continue
        if next_event >= until:
            break
        env._now, _, _, event = pop(queue)
        callbacks, event.callbacks = event.callbacks, None
        for callback in callbacks:
            callback(event)
        if not event._ok and not hasattr(event, "_defused"):
            raise event._value
    env._now = until
