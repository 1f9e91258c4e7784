"""The event loop of the compiled engine (``compiled.py``), in Numba: each patient process of
``model.py`` as a state machine (a state is the point in the SimPy generator where the process
resumes), on the heap of events, pools of places and record buffers of ``loopstate.py``.

Events are ordered as SimPy orders them: by time, then priority (a process start is urgent; a
timeout or a place handed over is normal), then order of scheduling; a wait on "a place or a
deadline, whichever comes first" takes the extra step of SimPy's condition events
(``_wait_for_place``, ``_waited``). So, fed the same plan, the loop reproduces the SimPy engine's
trajectories event for event. Pure: every random number arrives in the attribute arrays; buffers
are passed in, and a full one is reported in the returned status rather than grown.

``_loop`` takes the next arrival or event and resumes the process it wakes, by the kind of the
state the process waits in: each kind is one function, its states in the order of the generator
it mirrors (``_acute``: ``A_*``, ``_assess``: ``AS_*``, ``_downstream``: ``D_*``, ``_referral``:
``R_*``), so a change to the model reads side by side with its twin here; it runs until the
process waits, ends, or goes on in another kind's state (as ``_acute`` calls ``_assess``).
``tests/test_compiled.py`` fails on any difference between the two engines. The step functions
are inlined into ``_loop`` (``inlining.py``: called, or inlined by Numba alone, they counted
references to their twenty arrays at every call, and the loop ran up to twice as slow), so each
takes at most 30 parameters, and lives in this file: Numba's cache of ``_loop`` is renewed when
this file changes, not when another does.
"""

from __future__ import annotations

import numba
import numpy as np

from flowsim.fields import (
    ARRIVE_FRONT_DOOR,
    ARRIVE_READY,
    NO_CODE,
    START_IN_TREATMENT,
    START_QUEUED,
    V_LEAVE,
    V_OUTCOME,
    V_PATHWAY,
    V_READY,
    W_END,
)  # fmt: skip
from flowsim.inlining import Pipeline
from flowsim.loopstate import (
    B_MASK,
    C_ADMIT_EP,
    C_ADMIT_PERSON,
    C_ADMIT_ROW,
    C_EPISODES,
    C_FREE,
    C_HEAP,
    C_STATUS,
    C_STATUS_ARG,
    C_TURNED,
    C_VISITS,
    C_WAITS,
    DUE_WAKE_AT,
    EV_CAPACITY,
    EV_HOP,
    EV_OPENING,
    EV_RESUME,
    EV_WAKE,
    F_AT,
    F_DEADLINE,
    F_P_SINCE,
    F_T_READY,
    FULL_DUE,
    FULL_READMISSIONS,
    FULL_TURNED,
    INF,
    NORMAL,
    OK,
    P_ACUTE,
    P_ASSESSED,
    P_CODE,
    P_COND,
    P_D2A,
    P_DELAYS,
    P_EP,
    P_FIRED,
    P_GEN,
    P_GRANTED,
    P_KIND,
    P_NEXT,
    P_PATHWAY,
    P_PERSON,
    P_PLACE,
    P_QUEUED_FOR,
    P_RKEY,
    P_ROW,
    P_STATE,
    P_TARGET,
    P_VISIT,
    P_VISIT_AS,
    P_WAIT,
    P_WAIT_AS,
    Q_BUSY,
    Q_CAP,
    Q_HEAD,
    Q_OPEN,
    Q_TAIL,
    URGENT,
    ask_place,
    cancel,
    hold_until,
    new_process,
    new_visit,
    new_wait,
    pop,
    push,
    readmit_at,
    release,
    request,
    set_capacity,
    set_open,
    take,
    wake,
)
from flowsim.patients import COMMUNITY, DEATH, FRONT_DOOR, HOME, OPEN, PROCESS, READMIT

__all__ = ["FULL_DUE", "FULL_READMISSIONS", "FULL_TURNED", "OK", "run"]

# -- process states ---------------------------------------------------------------------------
# an acute episode (model.Model._acute) and its assessment (_assess)
A_INIT, A_BOARDED, A_TREATED_OR_DIED, A_AFTER_TREATMENT, A_TARGET_LOOP = 0, 1, 2, 3, 4
A_TARGET_WAITED, A_LEAVE = 5, 6
AS_START, AS_GRANTED, AS_DONE, AS_INIT = 7, 8, 9, 10
# stays after acute care (_downstream), community referrals (_referral), people there at day 0
# (each kind's states are numbered together: ``_loop`` finds a state's kind by range)
D_ENTER, D_STAY_END, D_DEADLINE, D_NEXT_WAITED, D_MOVE = 11, 12, 13, 14, 15
D_READMITTED, ALREADY_IN, R_INIT, R_GRANTED, END = 16, 17, 18, 19, 20
# kinds of acute episode
K_FRONT_DOOR, K_READY, K_IN_TREATMENT, K_QUEUED = 0, 1, 2, 3


# -- waits for a place ------------------------------------------------------------------------
@numba.njit(cache=True)
def _wait_for_place(pi, waits, ht, hk, c, wait_code, pid, ep, person, place, code, deadline, now):
    """Someone in ``place``, in the line for ``code``, waits for a place there (model.py: ``yield
    ev``) or, with a ``deadline`` (not ``INF``), for whichever comes first (``yield ev |
    env.timeout(deadline - now)``; the condition fires once: ``EV_HOP``). The wait is recorded.
    Returns True if the process must now wait, False if the deadline has already come (SimPy
    does not yield then) and the process goes on at once. Then ``_waited``."""
    pi[pid, P_WAIT] = new_wait(waits, c, ep, person, place, code, wait_code[code, 0],
                               wait_code[code, 1], now, np.nan)  # fmt: skip
    if deadline == INF:
        pi[pid, P_COND] = 0
        return True
    if deadline <= now:
        return False
    pi[pid, P_COND], pi[pid, P_FIRED] = 1, 0
    push(ht, hk, c, now + (deadline - now), NORMAL, EV_HOP, pid, pi[pid, P_GEN])
    return True


@numba.njit(cache=True)
def _waited(pid, code, pools, nodes, pi, waits, ht, hk, c, now):
    """After ``_wait_for_place``: True if the place in ``code`` came first; if the deadline did,
    the request is withdrawn (``Pool.cancel``). The wait ends now either way."""
    granted = pi[pid, P_GRANTED] != 0
    if not granted:
        cancel(code, pid, pools, nodes, pi, ht, hk, c, now)
    waits[W_END, pi[pid, P_WAIT]] = now
    return granted


# -- the event loop ---------------------------------------------------------------------------
@numba.njit(cache=True)
def run(
    # patients' attributes, one row per patient (arrivals, people there at day 0, readmissions)
    group, pathway, treatment, dies, process, assess, decondition, u_readmit, readmit_delay,
    acute, rkey, stay, route,
    # arrivals in time order: time, row, kind (-1 front door, -2 ready to leave, else a service)
    arrival_time, arrival_row, arrival_kind,
    # people in care at day 0 in creation order: row, kind (0 queued, 1 in treatment, 2 in a
    # downstream place), service
    start_row, start_kind, start_code,
    # readmission rows: first row and number of rows of each readmission key (a group at a trust)
    readmit_base, readmit_rows,
    # coded tables (plan.Plan)
    to, proc_wait, needs_assessment, d2a_pathway, readmit_p, wait_code, assess_of,
    # capacity: initial, steps (flattened: day, capacity; first index of each pool's steps)
    capacity, step_day, step_capacity, step_first, step_count, open_days, first_weekday,
    horizon, when_full,
    # buffers
    visits, waits, pi, pf, free, nodes, ht, hk, due, turned,
    # the run's state between calls: counters, pools, readmissions made of each key; whether
    # this call starts the run; the time to stop at (events at it are left for the next call)
    c, pools, readmitted, first_call, until,
):  # fmt: skip
    n_initial = -1
    if first_call:
        _start(c, pools, readmitted, capacity, step_count, open_days, start_row, start_kind,
               start_code, stay, pathway, group, acute, rkey, horizon, visits, pi, pf, free, ht,
               hk, due)  # fmt: skip
        n_initial = c[C_EPISODES]
    return _loop(
        group, pathway, treatment, dies, process, assess, decondition, u_readmit, readmit_delay,
        acute, rkey, stay, route, arrival_time, arrival_row, arrival_kind, readmit_base,
        readmit_rows, to, proc_wait, needs_assessment, d2a_pathway, readmit_p, wait_code,
        assess_of, step_day,
        step_capacity, step_first, step_count, open_days, first_weekday, horizon, when_full,
        visits, waits, pi, pf, free, nodes, ht, hk, due, turned, c, pools, readmitted, until,
        n_initial,
    )  # fmt: skip


@numba.njit(cache=True)
def _start(c, pools, readmitted, capacity, step_count, open_days, start_row, start_kind,
           start_code, stay, pathway, group, acute, rkey, horizon, visits, pi, pf, free, ht, hk,
           due):  # fmt: skip
    """The state at day 0: pools, and the processes made in Model.__init__."""
    n_services = capacity.shape[0]
    c[:] = 0
    readmitted[:] = 0
    for k in range(n_services):
        pools[k, :] = 0
        pools[k, Q_CAP], pools[k, Q_OPEN], pools[k, Q_HEAD], pools[k, Q_TAIL] = (
            capacity[k],
            1,
            -1,
            -1,
        )
        due[k, DUE_WAKE_AT] = INF
    # processes made in Model.__init__: capacity schedules and door schedules, then day 0
    for k in range(n_services):
        if step_count[k] > 1:
            push(ht, hk, c, 0.0, URGENT, EV_CAPACITY, k, 0)
        has_closed_day = False
        for d in range(7):
            if not open_days[k, d]:
                has_closed_day = True
        if has_closed_day:
            push(ht, hk, c, 0.0, URGENT, EV_OPENING, k, 0)
    for j in range(start_row.shape[0]):
        row, kind, code = start_row[j], start_kind[j], start_code[j]
        ep = c[C_EPISODES]
        c[C_EPISODES] += 1
        if kind == START_QUEUED or kind == START_IN_TREATMENT:  # in a trust's acute bed
            pools[acute[row], Q_BUSY] += 1
            pid = new_process(pi, pf, free, c, A_INIT, row, ep, ep)
            pi[pid, P_ACUTE], pi[pid, P_RKEY] = acute[row], rkey[row]
            pi[pid, P_KIND] = K_QUEUED if kind == START_QUEUED else K_IN_TREATMENT
            if kind == START_QUEUED:
                pi[pid, P_QUEUED_FOR] = code
            push(ht, hk, c, 0.0, URGENT, EV_RESUME, pid, pi[pid, P_GEN])
        else:
            pools[code, Q_BUSY] += 1
            pid = new_process(pi, pf, free, c, ALREADY_IN, row, ep, ep)
            pi[pid, P_CODE] = code
            pi[pid, P_VISIT] = new_visit(
                visits, c, ep, ep, code, 0.0, np.nan, np.nan, OPEN, pathway[row], group[row]
            )
            if stay[row, code] < horizon:
                push(ht, hk, c, stay[row, code], NORMAL, EV_RESUME, pid, pi[pid, P_GEN])


# -- the event loop: what comes next, and the process it resumes ------------------------------
@numba.njit(cache=True, pipeline_class=Pipeline)
def _loop(
    group, pathway, treatment, dies, process, assess, decondition, u_readmit, readmit_delay,
    acute, rkey, stay, route, arrival_time, arrival_row, arrival_kind, readmit_base,
    readmit_rows, to, proc_wait, needs_assessment, d2a_pathway, readmit_p, wait_code, assess_of,
    step_day,
    step_capacity, step_first, step_count, open_days, first_weekday, horizon, when_full, visits,
    waits, pi, pf, free, nodes, ht, hk, due, turned, c, pools, readmitted, until, n_initial,
):  # fmt: skip
    """Events and arrivals before ``until``, in SimPy's order."""
    n_arrivals = arrival_time.shape[0]
    k_arrival = 0
    c[C_ADMIT_ROW] = -1
    now = 0.0
    while c[C_STATUS] == OK:
        next_arrival = arrival_time[k_arrival] if k_arrival < n_arrivals else INF
        next_event = ht[0] if c[C_HEAP] > 0 else INF
        if next_arrival <= next_event:
            if next_arrival >= until:
                break
            now = next_arrival
            pid = _arrive(arrival_row[k_arrival], arrival_kind[k_arrival], acute, rkey, pi, pf,
                          free, c)  # fmt: skip
            k_arrival += 1
        else:
            if next_event >= until:
                break
            now = next_event
            pid = _event(now, step_day, step_capacity, step_first, step_count, open_days,
                         first_weekday, horizon, readmit_base, readmit_rows, pi, nodes, ht, hk,
                         due, c, pools, readmitted)  # fmt: skip
        while pid >= 0 or c[C_ADMIT_ROW] >= 0:  # the process woken, then an admission
            if pid >= 0:
                pi[pid, P_GEN] += 1
                state = pi[pid, P_STATE]
                waiting = False
                while not waiting and state != END:  # the steps of the state's kind
                    if state < AS_START:
                        state, waiting = _acute(
                            state, pid, now, group, pathway, treatment, dies, process,
                            decondition, u_readmit, readmit_delay, to, proc_wait,
                            needs_assessment, d2a_pathway, readmit_p, wait_code, horizon,
                            when_full, visits, waits, pi, pf, nodes, ht, hk, due, turned, c,
                            pools,
                        )  # fmt: skip
                    elif state < D_ENTER:
                        state, waiting = _assess(state, pid, now, group, pathway, assess,
                                                 wait_code, assess_of, visits, waits, pi, nodes,
                                                 ht, hk, due, c, pools)  # fmt: skip
                    elif state < R_INIT:
                        state, waiting = _downstream(
                            state, pid, now, group, pathway, stay, route, readmit_base,
                            readmit_rows, wait_code, horizon, when_full, visits, waits, pi, pf,
                            free, nodes, ht, hk, due, turned, c, pools, readmitted,
                        )  # fmt: skip
                    else:
                        state, waiting = _referral(state, pid, now, wait_code, when_full, waits,
                                                   pi, nodes, ht, hk, due, turned, c,
                                                   pools)  # fmt: skip
                pi[pid, P_STATE] = state
                if state == END:
                    free[c[C_FREE]] = pid
                    c[C_FREE] += 1
            pid = -1
            if c[C_ADMIT_ROW] >= 0:
                pid = _admit(now, group, pathway, treatment, dies, process, u_readmit,
                             readmit_delay, acute, rkey, proc_wait, readmit_p, horizon, visits,
                             waits, pi, pf, free, ht, hk, due, c, pools)  # fmt: skip
    return c[C_STATUS], c[C_STATUS_ARG], c[C_VISITS], c[C_WAITS], n_initial, c[C_TURNED]


@numba.njit(inline="always")
def _arrive(row, kind, acute, rkey, pi, pf, free, c):
    """An arrival (``fields.ARRIVE_*``, or the service a referral asks for): the process it
    starts, or -1 (a front-door arrival is admitted once the step is done)."""
    ep = c[C_EPISODES]
    c[C_EPISODES] += 1
    if kind == ARRIVE_FRONT_DOOR:
        c[C_ADMIT_ROW], c[C_ADMIT_EP], c[C_ADMIT_PERSON] = row, ep, ep
        return -1
    if kind == ARRIVE_READY:
        pid = new_process(pi, pf, free, c, A_INIT, row, ep, ep)
        pi[pid, P_KIND] = K_READY
        pi[pid, P_ACUTE], pi[pid, P_RKEY] = acute[row], rkey[row]
        return pid
    pid = new_process(pi, pf, free, c, R_INIT, row, ep, ep)
    pi[pid, P_CODE] = kind
    return pid


@numba.njit(inline="always")
def _event(now, step_day, step_capacity, step_first, step_count, open_days, first_weekday,
           horizon, readmit_base, readmit_rows, pi, nodes, ht, hk, due, c, pools,
           readmitted):  # fmt: skip
    """Take the next event off the heap and do it: the process it resumes, or -1."""
    payload = hk[0, 1]
    ev_kind, a, b = payload & 15, payload >> 24, (payload >> 4) & B_MASK
    pop(ht, hk, c)
    if ev_kind == EV_RESUME:
        if (pi[a, P_GEN] & B_MASK) == b:
            return a
    elif ev_kind == EV_HOP:  # a condition fires once, then resumes its process
        if (pi[a, P_GEN] & B_MASK) == b and not pi[a, P_FIRED]:
            pi[a, P_FIRED] = 1
            push(ht, hk, c, now, NORMAL, EV_RESUME, a, b)
    elif ev_kind == EV_WAKE:  # places due in pool a, while people wait for one
        wake(a, pools, nodes, pi, due, ht, hk, c, now)
    elif ev_kind == EV_CAPACITY:
        first, count = step_first[a], step_count[a]
        if b > 0:
            set_capacity(a, step_capacity[first + b], pools, nodes, pi, due, ht, hk, c, now)
        if b + 1 < count:
            day = step_day[first + b + 1]
            push(ht, hk, c, now + (day - now), NORMAL, EV_CAPACITY, a, b + 1)
    elif ev_kind == EV_OPENING:
        if b < horizon:
            is_open = 1 if open_days[a, (first_weekday + b) % 7] else 0
            if is_open != pools[a, Q_OPEN]:
                set_open(a, is_open, pools, nodes, pi, due, ht, hk, c, now)
            push(ht, hk, c, now + ((b + 1) - now), NORMAL, EV_OPENING, a, b + 1)
    else:  # EV_READMIT: a new acute episode for person a of readmission key b
        _readmission(a, b, readmit_base, readmit_rows, c, readmitted)
    return -1


@numba.njit(inline="always")
def _readmission(person, key, readmit_base, readmit_rows, c, readmitted):
    """A readmission of ``person`` (readmission ``key``: their group at their trust) to admit
    once the step is done, on the key's next readmission row; if the rows drawn are used up, the
    run stops (``FULL_READMISSIONS``)."""
    k = readmitted[key]
    if k >= readmit_rows[key]:
        c[C_STATUS], c[C_STATUS_ARG] = FULL_READMISSIONS, key
        return
    readmitted[key] += 1
    c[C_ADMIT_ROW], c[C_ADMIT_PERSON] = readmit_base[key] + k, person
    c[C_ADMIT_EP] = c[C_EPISODES]
    c[C_EPISODES] += 1


@numba.njit(inline="always")
def _admit(now, group, pathway, treatment, dies, process, u_readmit, readmit_delay, acute, rkey,
           proc_wait, readmit_p, horizon, visits, waits, pi, pf, free, ht, hk, due, c,
           pools):  # fmt: skip
    """model.Model._admit, of the admission waiting in ``c``: the process it starts now, or -1
    (a free bed and pathway 0: the whole stay is known now and recorded, with no process)."""
    row, ep, person = c[C_ADMIT_ROW], c[C_ADMIT_EP], c[C_ADMIT_PERSON]
    c[C_ADMIT_ROW] = -1
    a = acute[row]
    if pathway[row] != 0 or not take(a, pools, due, now):
        pid = new_process(pi, pf, free, c, A_INIT, row, ep, person)
        pi[pid, P_KIND] = K_FRONT_DOOR
        pi[pid, P_ACUTE], pi[pid, P_RKEY] = a, rkey[row]
        return pid
    g = group[row]
    treat = treatment[row]
    ready = now + treat
    vi = new_visit(visits, c, ep, person, a, now, ready, ready, DEATH, 0, g)
    delay = treat
    if not dies[row]:
        proc = process[row]
        delay = treat + proc
        leave = now + delay
        if proc > 0:
            new_wait(waits, c, ep, person, a, PROCESS, proc_wait[0, 0], proc_wait[0, 1],
                     ready, leave)  # fmt: skip
        visits[V_LEAVE, vi] = leave
        visits[V_OUTCOME, vi] = HOME
        if u_readmit[row] < readmit_p[0]:
            t = leave + readmit_delay[row]
            if t < horizon:
                readmit_at(ht, hk, c, now, t, person, rkey[row])
    hold_until(a, now + delay, pools, due, ht, hk, c, now)
    return -1


# -- the processes, a kind at a time ---------------------------------------------------------
# Each runs a process from ``state`` and returns the state it stops in and whether the process
# waits there; if not, it goes on in that state (another kind's), or has ended (END).
@numba.njit(inline="always")
def _acute(
    state, pid, now, group, pathway, treatment, dies, process, decondition, u_readmit,
    readmit_delay, to, proc_wait, needs_assessment, d2a_pathway, readmit_p, wait_code, horizon,
    when_full, visits, waits, pi, pf, nodes, ht, hk, due, turned, c, pools,
):  # fmt: skip
    """model.Model._acute: an acute episode, from a bed (or the front door's wait for one) to
    leaving it; its assessment is ``_assess``, its onward stays ``_downstream``."""
    row, ep, person = pi[pid, P_ROW], pi[pid, P_EP], pi[pid, P_PERSON]
    g = group[row]
    a = pi[pid, P_ACUTE]  # the trust's acute service
    while True:
        if state == A_INIT:
            kind = pi[pid, P_KIND]
            if kind == K_FRONT_DOOR or kind == K_READY:
                if not request(a, pid, pools, nodes, pi, due, ht, hk, c, now):
                    pi[pid, P_WAIT] = new_wait(waits, c, ep, person, FRONT_DOOR, a, NO_CODE,
                                               NO_CODE, now, np.nan)  # fmt: skip
                    pi[pid, P_COND] = 0
                    return A_BOARDED, True
            state = A_BOARDED
            pi[pid, P_WAIT] = -1
        elif state == A_BOARDED:
            if pi[pid, P_WAIT] >= 0:
                waits[W_END, pi[pid, P_WAIT]] = now
            kind = pi[pid, P_KIND]
            p = pathway[row]
            pi[pid, P_PATHWAY] = p
            vi = new_visit(visits, c, ep, person, a, now, np.nan, np.nan, OPEN, p, g)
            pi[pid, P_VISIT] = vi
            treat = treatment[row] if kind == K_FRONT_DOOR or kind == K_IN_TREATMENT else 0.0
            if treat > 0 and dies[row]:
                push(ht, hk, c, now + treat, NORMAL, EV_RESUME, pid, pi[pid, P_GEN])
                pf[pid, F_T_READY] = -1.0  # marks death
                return A_TREATED_OR_DIED, True
            t_ready = now + treat
            visits[V_READY, vi] = t_ready
            pf[pid, F_T_READY] = t_ready
            queued_for = pi[pid, P_QUEUED_FOR]
            pi[pid, P_TARGET] = to[p, g] if queued_for < 0 else queued_for
            pi[pid, P_ASSESSED] = 1 if (not needs_assessment[p] or queued_for >= 0) else 0
            pi[pid, P_D2A] = 0
            proc = process[row] if queued_for < 0 else 0.0
            if proc > 0:
                new_wait(waits, c, ep, person, a, PROCESS, proc_wait[p, 0], proc_wait[p, 1],
                         t_ready, now + (treat + proc))  # fmt: skip
            if treat + proc > 0:
                push(ht, hk, c, now + (treat + proc), NORMAL, EV_RESUME, pid, pi[pid, P_GEN])
                return A_TREATED_OR_DIED, True
            state = A_AFTER_TREATMENT
        elif state == A_TREATED_OR_DIED:
            if pf[pid, F_T_READY] < 0:  # died in hospital
                vi = pi[pid, P_VISIT]
                visits[V_READY, vi] = visits[V_LEAVE, vi] = now
                visits[V_OUTCOME, vi] = DEATH
                release(a, pools, nodes, pi, ht, hk, c, now)
                return END, False
            state = A_AFTER_TREATMENT
        elif state == A_AFTER_TREATMENT:
            p = pi[pid, P_PATHWAY]
            pf[pid, F_P_SINCE] = pf[pid, F_T_READY]
            if pi[pid, P_QUEUED_FOR] < 0:
                if not pi[pid, P_ASSESSED] and d2a_pathway[p]:
                    pi[pid, P_D2A] = pi[pid, P_ASSESSED] = 1
                if not pi[pid, P_ASSESSED]:
                    pi[pid, P_ASSESSED] = 1
                    pi[pid, P_DELAYS], pi[pid, P_PLACE] = 1, a
                    return AS_START, False
            state = A_TARGET_LOOP
        elif state == A_TARGET_LOOP:  # wait for the next setting, holding the bed
            target = pi[pid, P_TARGET]
            state = A_LEAVE
            if target >= 0:
                target, waiting = ask_place(target, pid, pools, nodes, pi, due, ht, hk, c,
                                            when_full, turned, ep, person, a,
                                            now)  # fmt: skip
                pi[pid, P_TARGET] = target
                if waiting:
                    p = pi[pid, P_PATHWAY]
                    # need may escalate while delayed; with deconditioning off, the times to
                    # it are INF (patients.py), as model.py's ``escalate`` has it
                    at = pf[pid, F_P_SINCE] + decondition[row, p - 1] if 1 <= p <= 2 else INF
                    pf[pid, F_AT] = at
                    state = A_TARGET_WAITED
                    if _wait_for_place(pi, waits, ht, hk, c, wait_code, pid, ep, person, a,
                                       target, at, now):  # fmt: skip
                        return state, True
        elif state == A_TARGET_WAITED:
            if _waited(pid, pi[pid, P_TARGET], pools, nodes, pi, waits, ht, hk, c, now):
                state = A_LEAVE
            else:
                p = pi[pid, P_PATHWAY] + 1  # escalated: the next pathway's setting
                pi[pid, P_PATHWAY] = p
                pf[pid, F_P_SINCE] = pf[pid, F_AT]
                visits[V_PATHWAY, pi[pid, P_VISIT]] = p
                pi[pid, P_TARGET] = to[p, g]
                if not pi[pid, P_ASSESSED]:
                    pi[pid, P_D2A] = pi[pid, P_ASSESSED] = 1
                state = A_TARGET_LOOP
        else:  # A_LEAVE
            release(a, pools, nodes, pi, ht, hk, c, now)
            vi = pi[pid, P_VISIT]
            target = pi[pid, P_TARGET]
            visits[V_LEAVE, vi] = now
            visits[V_OUTCOME, vi] = target
            deadline = INF
            if u_readmit[row] < readmit_p[pi[pid, P_PATHWAY]]:
                deadline = now + readmit_delay[row]
            pf[pid, F_DEADLINE] = deadline
            if target < 0:  # home, or lost (out of the model: no readmission)
                if target == HOME and deadline < horizon:
                    readmit_at(ht, hk, c, now, deadline, person, pi[pid, P_RKEY])
                return END, False
            pi[pid, P_CODE] = target
            return D_ENTER, False


@numba.njit(inline="always")
def _assess(state, pid, now, group, pathway, assess, wait_code, assess_of, visits, waits, pi,
            nodes, ht, hk, due, c, pools):  # fmt: skip
    """model.Model._assess: an assessment, in an acute bed (it delays the patient, who then
    goes on to ``A_TARGET_LOOP``) or during a downstream stay (its own process: ``AS_INIT``)."""
    row, ep, person = pi[pid, P_ROW], pi[pid, P_EP], pi[pid, P_PERSON]
    g = group[row]
    assessment = assess_of[pi[pid, P_ACUTE]]  # the trust's assessment team
    while True:
        if state == AS_START or state == AS_INIT:
            if pi[pid, P_DELAYS]:
                pi[pid, P_WAIT_AS] = new_wait(waits, c, ep, person, pi[pid, P_PLACE], assessment,
                                              wait_code[assessment, 0], wait_code[assessment, 1],
                                              now, np.nan)  # fmt: skip
            state = AS_GRANTED
            if not request(assessment, pid, pools, nodes, pi, due, ht, hk, c, now):
                pi[pid, P_COND] = 0
                return state, True
        elif state == AS_GRANTED:
            pi[pid, P_VISIT_AS] = new_visit(visits, c, ep, person, assessment, now, np.nan,
                                            np.nan, OPEN, pathway[row], g)  # fmt: skip
            push(ht, hk, c, now + assess[row], NORMAL, EV_RESUME, pid, pi[pid, P_GEN])
            return AS_DONE, True
        else:  # AS_DONE
            release(assessment, pools, nodes, pi, ht, hk, c, now)
            va = pi[pid, P_VISIT_AS]
            visits[V_READY, va] = visits[V_LEAVE, va] = now
            delays = pi[pid, P_DELAYS]
            visits[V_OUTCOME, va] = pi[pid, P_PLACE] if delays else HOME
            if pi[pid, P_WAIT_AS] >= 0:
                waits[W_END, pi[pid, P_WAIT_AS]] = now
            return (A_TARGET_LOOP if delays else END), False


@numba.njit(inline="always")
def _downstream(
    state, pid, now, group, pathway, stay, route, readmit_base, readmit_rows, wait_code, horizon,
    when_full, visits, waits, pi, pf, free, nodes, ht, hk, due, turned, c, pools, readmitted,
):  # fmt: skip
    """model.Model._downstream: stays after acute care (or a referral), each until the next
    setting has a place, until home, death, or a readmission (``F_DEADLINE``) cuts it short."""
    row, ep, person = pi[pid, P_ROW], pi[pid, P_EP], pi[pid, P_PERSON]
    g = group[row]
    while True:
        if state == D_ENTER:
            code = pi[pid, P_CODE]
            pi[pid, P_VISIT] = new_visit(visits, c, ep, person, code, now, np.nan, np.nan, OPEN,
                                         pathway[row], g)  # fmt: skip
            if pi[pid, P_D2A]:  # assessed here, during the stay, by its own process
                pi[pid, P_D2A] = 0
                q = new_process(pi, pf, free, c, AS_INIT, row, ep, person)
                pi[q, P_DELAYS], pi[q, P_PLACE] = 0, code
                pi[q, P_ACUTE], pi[q, P_RKEY] = pi[pid, P_ACUTE], pi[pid, P_RKEY]
                push(ht, hk, c, now, URGENT, EV_RESUME, q, pi[q, P_GEN])
            s = stay[row, code]
            deadline = pf[pid, F_DEADLINE]
            if now + s >= deadline:
                push(ht, hk, c, now + max(deadline - now, 0.0), NORMAL, EV_RESUME, pid,
                     pi[pid, P_GEN])  # fmt: skip
                return D_DEADLINE, True
            nxt = route[row, code]
            if nxt < 0:  # the last stay (then home or death): known now, so no process
                end = now + s
                vi = pi[pid, P_VISIT]
                visits[V_READY, vi] = visits[V_LEAVE, vi] = end
                visits[V_OUTCOME, vi] = nxt
                hold_until(code, end, pools, due, ht, hk, c, now)
                if nxt == HOME and deadline < horizon:
                    readmit_at(ht, hk, c, end, deadline, person, pi[pid, P_RKEY])
                return END, False
            push(ht, hk, c, now + s, NORMAL, EV_RESUME, pid, pi[pid, P_GEN])
            return D_STAY_END, True
        elif state == D_DEADLINE:
            state = D_READMITTED
        elif state == ALREADY_IN:  # the residual stay is over; the process starts now
            push(ht, hk, c, now, URGENT, EV_RESUME, pid, pi[pid, P_GEN])
            return D_STAY_END, True
        elif state == D_STAY_END:
            code = pi[pid, P_CODE]
            visits[V_READY, pi[pid, P_VISIT]] = now
            nxt = route[row, code]
            waiting = False
            if nxt >= 0:
                nxt, waiting = ask_place(nxt, pid, pools, nodes, pi, due, ht, hk, c, when_full,
                                         turned, ep, person, code, now)  # fmt: skip
            pi[pid, P_NEXT] = nxt
            state = D_MOVE
            if waiting:  # the deadline, if any, is after now (the stay ended first)
                state = D_NEXT_WAITED
                if _wait_for_place(pi, waits, ht, hk, c, wait_code, pid, ep, person, code, nxt,
                                   pf[pid, F_DEADLINE], now):  # fmt: skip
                    return state, True
        elif state == D_NEXT_WAITED:
            if _waited(pid, pi[pid, P_NEXT], pools, nodes, pi, waits, ht, hk, c, now):
                state = D_MOVE
            else:
                state = D_READMITTED
        elif state == D_MOVE:
            code, nxt = pi[pid, P_CODE], pi[pid, P_NEXT]
            release(code, pools, nodes, pi, ht, hk, c, now)
            vi = pi[pid, P_VISIT]
            visits[V_LEAVE, vi] = now
            visits[V_OUTCOME, vi] = nxt
            if nxt < 0:
                deadline = pf[pid, F_DEADLINE]
                if nxt == HOME and deadline < horizon:
                    readmit_at(ht, hk, c, now, deadline, person, pi[pid, P_RKEY])
                return END, False
            pi[pid, P_CODE] = nxt
            state = D_ENTER
        else:  # D_READMITTED
            release(pi[pid, P_CODE], pools, nodes, pi, ht, hk, c, now)
            vi = pi[pid, P_VISIT]
            if visits[V_READY, vi] != visits[V_READY, vi]:
                visits[V_READY, vi] = now
            visits[V_LEAVE, vi] = now
            visits[V_OUTCOME, vi] = READMIT
            _readmission(person, pi[pid, P_RKEY], readmit_base, readmit_rows, c, readmitted)
            return END, False


@numba.njit(inline="always")
def _referral(state, pid, now, wait_code, when_full, waits, pi, nodes, ht, hk, due, turned, c,
              pools):  # fmt: skip
    """model.Model._referral: a community referral, until a place (then ``_downstream``) or a
    turn-away."""
    ep = pi[pid, P_EP]
    if state == R_INIT:
        code = pi[pid, P_CODE]
        code, waiting = ask_place(code, pid, pools, nodes, pi, due, ht, hk, c, when_full,
                                  turned, ep, ep, COMMUNITY, now)  # fmt: skip
        if code < 0:  # turned away: lost, or home
            return END, False
        pi[pid, P_CODE] = code
        if waiting:
            _wait_for_place(pi, waits, ht, hk, c, wait_code, pid, ep, ep, COMMUNITY, code, INF,
                            now)  # fmt: skip
            return R_GRANTED, True
        return D_ENTER, False
    # R_GRANTED
    _waited(pid, pi[pid, P_CODE], pools, nodes, pi, waits, ht, hk, c, now)
    return D_ENTER, False
