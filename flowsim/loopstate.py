"""The compiled loop's state (``eventloop.py``) and the operations on it that every process step
shares: the heap of events, pools of places (``engine.Pool``, with its heaps of due releases),
the record buffers and the slots of processes. The integer columns name positions in the state
arrays; Numba reads them as compile-time constants. Arrays are passed one by one, not in tuples:
reading an array out of a tuple makes Numba count a reference at every access, which doubled the
loop's time.
"""

from __future__ import annotations

import math

import numba

from flowsim.fields import (
    T_EPISODE,
    T_PERSON,
    T_PLACE,
    T_SERVICE,
    T_TIME,
    T_TO,
    V_ENTER,
    V_EPISODE,
    V_GROUP,
    V_LEAVE,
    V_OUTCOME,
    V_PATHWAY,
    V_PERSON,
    V_READY,
    V_SERVICE,
    W_END,
    W_EPISODE,
    W_PERSON,
    W_PLACE,
    W_REASON,
    W_RESPONSIBLE,
    W_START,
    W_WAITS_FOR,
)  # fmt: skip
from flowsim.plan import WAIT

# -- event kinds and priorities ---------------------------------------------------------------

URGENT, NORMAL = 0, 1
EV_RESUME, EV_HOP, EV_WAKE, EV_CAPACITY, EV_OPENING, EV_READMIT = 0, 1, 2, 3, 4, 5
# columns of the per-process integer state
(
    P_STATE, P_ROW, P_EP, P_PERSON, P_KIND, P_QUEUED_FOR, P_PATHWAY, P_TARGET, P_ASSESSED, P_D2A,
    P_VISIT, P_WAIT, P_VISIT_AS, P_WAIT_AS, P_DELAYS, P_PLACE, P_CODE, P_NEXT, P_GEN, P_GRANTED,
    P_COND, P_FIRED, P_NODE, P_ACUTE, P_RKEY,
) = range(25)  # fmt: skip
P_INT = 25
F_T_READY, F_P_SINCE, F_AT, F_DEADLINE = range(4)
P_FLOAT = 4
# columns of a pool (a service's places) and of a waiter node
Q_CAP, Q_BUSY, Q_OPEN, Q_HEAD, Q_TAIL, Q_LIVE, Q_DUE = range(7)
Q_N = 7
# a pool's row of ``due`` (engine.Pool's ``wake_at`` and ``due``): the time of the wake-up event
# last scheduled (INF: none since the last wake), then a heap of the times places are given back,
# from column DUE_ROOT (``pools[k, Q_DUE]`` of them: a binary heap numbered from 1)
DUE_WAKE_AT, DUE_ROOT = 0, 1
N_PROC, N_NEXT, N_ALIVE = range(3)
# counters
(
    C_SEQ, C_HEAP, C_VISITS, C_WAITS, C_PROCS, C_NODES, C_EPISODES, C_STATUS, C_STATUS_ARG, C_FREE,
    C_TURNED,
) = range(11)  # fmt: skip
# an admission to make once the current step is done (row -1: none): row, episode, person
C_ADMIT_ROW, C_ADMIT_EP, C_ADMIT_PERSON = 11, 12, 13
C_N = 14
OK, FULL_HEAP, FULL_VISITS, FULL_WAITS, FULL_PROCS, FULL_NODES, FULL_READMISSIONS = range(7)
FULL_TURNED, FULL_DUE = 7, 8
INF = math.inf


# -- heap of events: time, then key = priority << 52 | sequence; payload = a << 24 | b << 4 | kind
B_MASK = (1 << 20) - 1


@numba.njit(cache=True)
def push(ht, hk, c, t, pri, kind, a, b):
    n = c[C_HEAP]
    if n >= ht.shape[0]:
        c[C_STATUS] = FULL_HEAP
        return
    key = (pri << 52) | c[C_SEQ]
    payload = (a << 24) | ((b & B_MASK) << 4) | kind
    c[C_SEQ] += 1
    i = n
    while i > 0:
        parent = (i - 1) >> 1
        if ht[parent] < t or (ht[parent] == t and hk[parent, 0] < key):
            break
        ht[i] = ht[parent]
        hk[i, 0], hk[i, 1] = hk[parent, 0], hk[parent, 1]
        i = parent
    ht[i] = t
    hk[i, 0], hk[i, 1] = key, payload
    c[C_HEAP] = n + 1


@numba.njit(cache=True)
def pop(ht, hk, c):
    """Remove the root (read it first)."""
    n = c[C_HEAP] - 1
    c[C_HEAP] = n
    t, key, payload = ht[n], hk[n, 0], hk[n, 1]
    i = 0
    while True:
        child = 2 * i + 1
        if child >= n:
            break
        r = child + 1
        if r < n and (ht[r] < ht[child] or (ht[r] == ht[child] and hk[r, 0] < hk[child, 0])):
            child = r
        if t < ht[child] or (t == ht[child] and key < hk[child, 0]):
            break
        ht[i] = ht[child]
        hk[i, 0], hk[i, 1] = hk[child, 0], hk[child, 1]
        i = child
    ht[i] = t
    hk[i, 0], hk[i, 1] = key, payload


# -- pools: first come, first served places (engine.Pool) --------------------------------------
# A place whose release time is known when it is taken costs no event: the time goes into the
# pool's heap of due releases (``hold_until``), the place is given back when the pool is next
# asked (``flush``: ``take``, ``request``, a capacity change, the door opening), and a wake-up
# event (``EV_WAKE``) is scheduled only while someone waits, as engine.Pool does, so that events
# at a tie come in SimPy's order.
@numba.njit(cache=True)
def _grant(pi, ht, hk, c, now, pid):
    """Hand a place to a waiting process: it resumes, one step later if it waits in a condition
    (``succeed()`` schedules at normal priority, as a timeout does)."""
    pi[pid, P_GRANTED] = 1
    kind = EV_HOP if pi[pid, P_COND] else EV_RESUME
    push(ht, hk, c, now, NORMAL, kind, pid, pi[pid, P_GEN])


@numba.njit(cache=True)
def hand_over(k, pools, nodes, pi, ht, hk, c, now):
    if not pools[k, Q_OPEN]:
        return
    while pools[k, Q_LIVE] > 0 and pools[k, Q_BUSY] < pools[k, Q_CAP]:
        node = pools[k, Q_HEAD]
        pools[k, Q_HEAD] = nodes[node, N_NEXT]
        if nodes[node, N_ALIVE]:
            pools[k, Q_LIVE] -= 1
            pools[k, Q_BUSY] += 1
            _grant(pi, ht, hk, c, now, nodes[node, N_PROC])


@numba.njit(cache=True)
def release(k, pools, nodes, pi, ht, hk, c, now):
    pools[k, Q_BUSY] -= 1
    hand_over(k, pools, nodes, pi, ht, hk, c, now)


@numba.njit(cache=True)
def hold_until(k, t, pools, due, ht, hk, c, now):
    """The place just taken in ``k`` is given back at ``t`` (``Pool.hold_until``)."""
    n = pools[k, Q_DUE] + 1
    if n >= due.shape[1]:
        c[C_STATUS] = FULL_DUE  # the run is abandoned and repeated with more room
        return
    i = n
    while i > DUE_ROOT:
        parent = i >> 1
        if due[k, parent] <= t:
            break
        due[k, i] = due[k, parent]
        i = parent
    due[k, i] = t
    pools[k, Q_DUE] = n
    if pools[k, Q_LIVE] > 0:
        schedule_wake(k, pools, due, ht, hk, c, now)


@numba.njit(cache=True)
def flush(k, pools, due, now):
    """Give back the places due by ``now`` (``Pool._flush``)."""
    n = pools[k, Q_DUE]
    while n > 0 and due[k, DUE_ROOT] <= now:
        pools[k, Q_BUSY] -= 1
        t = due[k, n]  # the last leaf, sifted down from the root
        n -= 1
        i = DUE_ROOT
        while True:
            child = 2 * i
            if child > n:
                break
            if child < n and due[k, child + 1] < due[k, child]:
                child += 1
            if t <= due[k, child]:
                break
            due[k, i] = due[k, child]
            i = child
        due[k, i] = t
    pools[k, Q_DUE] = n


@numba.njit(cache=True)
def schedule_wake(k, pools, due, ht, hk, c, now):
    """A wake-up event at the next due release, if it is before the one last scheduled
    (``Pool._schedule_wake``: a timeout, so at ``now + (wake_at - now)``)."""
    if pools[k, Q_DUE] > 0 and due[k, DUE_ROOT] < due[k, DUE_WAKE_AT]:
        wake_at = due[k, DUE_ROOT]
        due[k, DUE_WAKE_AT] = wake_at
        push(ht, hk, c, now + (wake_at - now), NORMAL, EV_WAKE, k, 0)


@numba.njit(cache=True)
def wake(k, pools, nodes, pi, due, ht, hk, c, now):
    """A wake-up event (``Pool._wake``): the places due are given back and handed over; while
    people still wait, the next due release is woken for too."""
    due[k, DUE_WAKE_AT] = INF
    flush(k, pools, due, now)
    hand_over(k, pools, nodes, pi, ht, hk, c, now)
    if pools[k, Q_LIVE] > 0:
        schedule_wake(k, pools, due, ht, hk, c, now)


@numba.njit(cache=True)
def set_capacity(k, capacity, pools, nodes, pi, due, ht, hk, c, now):
    """``Pool.set_capacity``: a cut lets current occupants finish."""
    flush(k, pools, due, now)
    pools[k, Q_CAP] = capacity
    hand_over(k, pools, nodes, pi, ht, hk, c, now)


@numba.njit(cache=True)
def set_open(k, is_open, pools, nodes, pi, due, ht, hk, c, now):
    """``Pool.set_open``: while closed no one is taken in; occupants stay."""
    pools[k, Q_OPEN] = is_open
    if is_open:
        flush(k, pools, due, now)
        hand_over(k, pools, nodes, pi, ht, hk, c, now)


@numba.njit(cache=True)
def take(k, pools, due, now):
    """A place now if one is free, the door is open and no one is waiting."""
    if pools[k, Q_DUE] > 0 and due[k, DUE_ROOT] <= now:
        flush(k, pools, due, now)
    if pools[k, Q_BUSY] < pools[k, Q_CAP] and pools[k, Q_LIVE] == 0 and pools[k, Q_OPEN]:
        pools[k, Q_BUSY] += 1
        return True
    return False


@numba.njit(cache=True)
def request(k, pid, pools, nodes, pi, due, ht, hk, c, now):
    """A place at once (True), or join the line (False); the process must then wait."""
    if take(k, pools, due, now):
        return True
    node = c[C_NODES]
    if node >= nodes.shape[0]:
        c[C_STATUS] = FULL_NODES
        return True  # the run is abandoned and repeated with more room
    c[C_NODES] += 1
    nodes[node, N_PROC], nodes[node, N_NEXT], nodes[node, N_ALIVE] = pid, -1, 1
    if pools[k, Q_HEAD] < 0:
        pools[k, Q_HEAD] = node
    else:
        nodes[pools[k, Q_TAIL], N_NEXT] = node
    pools[k, Q_TAIL] = node
    pools[k, Q_LIVE] += 1
    pi[pid, P_GRANTED], pi[pid, P_NODE] = 0, node
    schedule_wake(k, pools, due, ht, hk, c, now)
    return False


@numba.njit(cache=True)
def cancel(k, pid, pools, nodes, pi, ht, hk, c, now):
    """Withdraw a request; a place already handed over is given back."""
    if pi[pid, P_GRANTED]:
        release(k, pools, nodes, pi, ht, hk, c, now)
    else:
        nodes[pi[pid, P_NODE], N_ALIVE] = 0
        pools[k, Q_LIVE] -= 1


@numba.njit(cache=True)
def ask_place(k, pid, pools, nodes, pi, due, ht, hk, c, when_full, turned, ep, person, place,
              now):  # fmt: skip
    """model.Model._place: ask for a place in ``k`` following the services' ``when_full`` rules.
    Returns the service (or ``HOME``, ``LOST``) the person goes to, and True if they joined its
    line (the process must then wait). Each turn-away is recorded (``records.TURNED_FIELDS``)."""
    while when_full[k] != WAIT:
        if take(k, pools, due, now):
            return k, False
        j = c[C_TURNED]
        if j < turned.shape[1]:
            c[C_TURNED] += 1
            turned[T_EPISODE, j], turned[T_PERSON, j], turned[T_PLACE, j] = ep, person, place
            turned[T_SERVICE, j], turned[T_TO, j], turned[T_TIME, j] = k, when_full[k], now
        else:
            c[C_STATUS] = FULL_TURNED  # the run is abandoned and repeated with more room
        k = when_full[k]
        if k < 0:
            return k, False
    return k, not request(k, pid, pools, nodes, pi, due, ht, hk, c, now)


@numba.njit(cache=True)
def readmit_at(ht, hk, c, since, t, person, group):
    """A readmission at ``t``, timed as a timeout set at ``since`` is: ``since + (t - since)``."""
    push(ht, hk, c, since + (t - since), NORMAL, EV_READMIT, person, group)


# -- records ----------------------------------------------------------------------------------
@numba.njit(cache=True)
def new_visit(visits, c, ep, person, service, enter, ready, leave, outcome, pathway, group):
    j = c[C_VISITS]
    if j >= visits.shape[1]:
        c[C_STATUS] = FULL_VISITS
        return 0
    c[C_VISITS] += 1
    visits[V_EPISODE, j], visits[V_PERSON, j], visits[V_SERVICE, j] = ep, person, service
    visits[V_ENTER, j], visits[V_READY, j], visits[V_LEAVE, j] = enter, ready, leave
    visits[V_OUTCOME, j], visits[V_PATHWAY, j], visits[V_GROUP, j] = outcome, pathway, group
    return j


@numba.njit(cache=True)
def new_wait(waits, c, ep, person, place, waits_for, reason, responsible, start, end):
    j = c[C_WAITS]
    if j >= waits.shape[1]:
        c[C_STATUS] = FULL_WAITS
        return 0
    c[C_WAITS] += 1
    waits[W_EPISODE, j], waits[W_PERSON, j], waits[W_PLACE, j] = ep, person, place
    waits[W_WAITS_FOR, j], waits[W_REASON, j] = waits_for, reason
    waits[W_RESPONSIBLE, j], waits[W_START, j], waits[W_END, j] = responsible, start, end
    return j


@numba.njit(cache=True)
def new_process(pi, pf, free, c, state, row, ep, person):
    """A new process (a patient's flow, or a discharge-to-assess assessment)."""
    if c[C_FREE] > 0:  # the slot of a process that ended; its generation goes on counting, so
        c[C_FREE] -= 1  # events left over from the old process never match the new one
        pid = free[c[C_FREE]]
        gen = pi[pid, P_GEN] + 1
    else:
        pid = c[C_PROCS]
        if pid >= pi.shape[0]:
            c[C_STATUS] = FULL_PROCS
            return 0
        c[C_PROCS] += 1
        gen = 0
    pi[pid, :] = 0
    pi[pid, P_GEN] = gen
    pf[pid, :] = 0.0
    pi[pid, P_STATE], pi[pid, P_ROW], pi[pid, P_EP], pi[pid, P_PERSON] = state, row, ep, person
    pi[pid, P_QUEUED_FOR] = -1
    pi[pid, P_VISIT] = pi[pid, P_WAIT] = pi[pid, P_VISIT_AS] = pi[pid, P_WAIT_AS] = -1
    pf[pid, F_DEADLINE] = INF
    return pid
