"""The compiled loop's state (``eventloop.py``) and the operations on it that every process step
shares: the heap of events, pools of places (``engine.Pool``), the record buffers and the slots
of processes.

What the loop reads and writes is grouped in three named tuples, passed whole to each step:
``Patients`` (the attribute table, one row per patient), ``Tables`` (the plan's coded tables,
capacity steps and door schedules) and ``State`` (buffers and counters, carried from one call to
the next). The integer columns below name the positions in the state arrays; Numba reads them as
compile-time constants.
"""

from __future__ import annotations

import math
from collections import namedtuple

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

Patients = namedtuple(
    "Patients",
    "group pathway treatment dies process assess decondition u_readmit readmit_delay stay route"
    " readmit_base readmit_rows",
)
"""Patients' attributes, one row per patient (arrivals, people there at day 0, readmissions);
stays and onward routes (rows x services); the k-th readmission of group g is row
``readmit_base[g] + k``, of ``readmit_rows[g]`` drawn."""
Tables = namedtuple(
    "Tables",
    "to proc_wait needs_assessment d2a readmit_p wait_code assessment escalate capacity step_day"
    " step_capacity step_first step_count open_days first_weekday horizon when_full",
)
"""The plan's coded tables (``plan.Plan``); capacity at day 0 and its steps (flattened: day,
capacity; each pool's first step and number of steps); door schedules."""
State = namedtuple("State", "visits waits pi pf free nodes ht hk turned c pools readmitted")
"""Records (a row per field, ``fields.py``), processes (integer and float columns), free process
slots, waiter nodes, the heap (times; key and payload), turn-aways; counters, pools, and the
readmissions made of each group."""

# -- event kinds and priorities ---------------------------------------------------------------
URGENT, NORMAL = 0, 1
EV_RESUME, EV_HOP, EV_RELEASE, EV_CAPACITY, EV_OPENING, EV_READMIT = 0, 1, 2, 3, 4, 5
# columns of the per-process integer state
(
    P_STATE, P_ROW, P_EP, P_PERSON, P_KIND, P_QUEUED_FOR, P_PATHWAY, P_TARGET, P_ASSESSED, P_D2A,
    P_VISIT, P_WAIT, P_VISIT_AS, P_WAIT_AS, P_DELAYS, P_PLACE, P_CODE, P_NEXT, P_GEN, P_GRANTED,
    P_COND, P_FIRED, P_NODE,
) = range(23)  # fmt: skip
P_INT = 23
F_T_READY, F_P_SINCE, F_AT, F_DEADLINE = range(4)
P_FLOAT = 4
# columns of a pool (a service's places) and of a waiter node
Q_CAP, Q_BUSY, Q_OPEN, Q_HEAD, Q_TAIL, Q_LIVE = range(6)
Q_N = 6
N_PROC, N_NEXT, N_ALIVE = range(3)
# counters; an admission to make once the current step is done (row -1: none)
(
    C_SEQ, C_HEAP, C_VISITS, C_WAITS, C_PROCS, C_NODES, C_EPISODES, C_STATUS, C_STATUS_ARG, C_FREE,
    C_TURNED, C_ADMIT_ROW, C_ADMIT_EP, C_ADMIT_PERSON,
) = range(14)  # fmt: skip
C_N = 14
OK, FULL_HEAP, FULL_VISITS, FULL_WAITS, FULL_PROCS, FULL_NODES, FULL_READMISSIONS = range(7)
FULL_TURNED = 7
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


@numba.njit(cache=True)
def wake_at(s, when, pid):
    """Resume process ``pid`` at ``when`` (a timeout)."""
    push(s.ht, s.hk, s.c, when, NORMAL, EV_RESUME, pid, s.pi[pid, P_GEN])


@numba.njit(cache=True)
def readmit_at(s, since, t, person, group):
    """A readmission at ``t``, timed as a timeout set at ``since`` is: ``since + (t - since)``."""
    push(s.ht, s.hk, s.c, since + (t - since), NORMAL, EV_READMIT, person, group)


# -- pools: first come, first served places (engine.Pool) --------------------------------------
@numba.njit(cache=True)
def _grant(pi, ht, hk, c, now, pid):
    """Hand a place to a waiting process: it resumes, one step later if it waits in a condition
    (``succeed()`` schedules at normal priority, as a timeout does)."""
    pi[pid, P_GRANTED] = 1
    kind = EV_HOP if pi[pid, P_COND] else EV_RESUME
    push(ht, hk, c, now, NORMAL, kind, pid, pi[pid, P_GEN])


@numba.njit(cache=True)
def hand_over(s, k, now):
    """Free places of pool ``k`` to the first in its line, while its door is open."""
    pools, nodes = s.pools, s.nodes
    if not pools[k, Q_OPEN]:
        return
    while pools[k, Q_LIVE] > 0 and pools[k, Q_BUSY] < pools[k, Q_CAP]:
        node = pools[k, Q_HEAD]
        pools[k, Q_HEAD] = nodes[node, N_NEXT]
        if nodes[node, N_ALIVE]:
            pools[k, Q_LIVE] -= 1
            pools[k, Q_BUSY] += 1
            _grant(s.pi, s.ht, s.hk, s.c, now, nodes[node, N_PROC])


@numba.njit(cache=True)
def release(s, k, now):
    s.pools[k, Q_BUSY] -= 1
    hand_over(s, k, now)


@numba.njit(cache=True)
def take(pools, k):
    """A place now if one is free, the door is open and no one is waiting."""
    if pools[k, Q_BUSY] < pools[k, Q_CAP] and pools[k, Q_LIVE] == 0 and pools[k, Q_OPEN]:
        pools[k, Q_BUSY] += 1
        return True
    return False


@numba.njit(cache=True)
def request(s, k, pid):
    """A place at once (True), or join the line (False); the process must then wait."""
    pools, nodes, pi, c = s.pools, s.nodes, s.pi, s.c
    if take(pools, k):
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
    return False


@numba.njit(cache=True)
def cancel(s, k, pid, now):
    """Withdraw a request; a place already handed over is given back."""
    if s.pi[pid, P_GRANTED]:
        release(s, k, now)
    else:
        s.nodes[s.pi[pid, P_NODE], N_ALIVE] = 0
        s.pools[k, Q_LIVE] -= 1


@numba.njit(cache=True)
def ask_place(s, when_full, k, pid, ep, person, place, now):
    """model.Model._place: ask for a place in ``k`` following the services' ``when_full`` rules.
    Returns the service (or ``HOME``, ``LOST``) the person goes to, and True if they joined its
    line (the process must then wait). Each turn-away is recorded (``fields.TURNED_FIELDS``)."""
    c, turned = s.c, s.turned
    while when_full[k] != WAIT:
        if take(s.pools, k):
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
    return k, not request(s, k, pid)


# -- records and processes --------------------------------------------------------------------
@numba.njit(cache=True)
def new_visit(s, ep, person, service, enter, ready, leave, outcome, pathway, group):
    """A stay (``fields.VISIT_FIELDS``); returns its index."""
    visits, c = s.visits, s.c
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
def new_wait(s, ep, person, place, waits_for, reason, responsible, start, end):
    """A wait (``fields.WAIT_FIELDS``); returns its index."""
    waits, c = s.waits, s.c
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
def new_process(s, state, row, ep, person):
    """A new process (a patient's flow, or a discharge-to-assess assessment) at ``state``."""
    pi, pf, free, c = s.pi, s.pf, s.free, s.c
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
