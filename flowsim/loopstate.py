"""The compiled loop's state (``eventloop.py``) and the operations on it that every process step
shares: the heap of events, pools of places (``engine.Pool``), the record buffers and the slots
of processes. The integer columns name positions in the state arrays; Numba reads them as
compile-time constants. Arrays are passed one by one, not in tuples: reading an array out of a
tuple makes Numba count a reference at every access, which doubled the loop's time.
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


# -- pools: first come, first served places (engine.Pool) --------------------------------------
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
def take(k, pools):
    """A place now if one is free, the door is open and no one is waiting."""
    if pools[k, Q_BUSY] < pools[k, Q_CAP] and pools[k, Q_LIVE] == 0 and pools[k, Q_OPEN]:
        pools[k, Q_BUSY] += 1
        return True
    return False


@numba.njit(cache=True)
def request(k, pid, pools, nodes, pi, c):
    """A place at once (True), or join the line (False); the process must then wait."""
    if take(k, pools):
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
def cancel(k, pid, pools, nodes, pi, ht, hk, c, now):
    """Withdraw a request; a place already handed over is given back."""
    if pi[pid, P_GRANTED]:
        release(k, pools, nodes, pi, ht, hk, c, now)
    else:
        nodes[pi[pid, P_NODE], N_ALIVE] = 0
        pools[k, Q_LIVE] -= 1


@numba.njit(cache=True)
def ask_place(k, pid, pools, nodes, pi, c, when_full, turned, ep, person, place, now):
    """model.Model._place: ask for a place in ``k`` following the services' ``when_full`` rules.
    Returns the service (or ``HOME``, ``LOST``) the person goes to, and True if they joined its
    line (the process must then wait). Each turn-away is recorded (``records.TURNED_FIELDS``)."""
    while when_full[k] != WAIT:
        if take(k, pools):
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
    return k, not request(k, pid, pools, nodes, pi, c)


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
