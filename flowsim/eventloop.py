"""The event loop of the compiled engine (``compiled.py``), in Numba: each patient process of
``model.py`` as a state machine (a state is the point in the SimPy generator where the process
resumes), on the heap, pools and record buffers of ``loopstate.py``.

Events are ordered as SimPy orders them: by time, then priority (a process start is urgent; a
timeout or a place handed over is normal), then order of scheduling; a wait on "a place or a
deadline, whichever comes first" takes the extra step of SimPy's condition events
(``_wait_for_place``). So, fed the same plan, the loop reproduces the SimPy engine's trajectories
event for event. Pure: every random number arrives in the attribute arrays; buffers are passed
in, and a full one is reported in the returned status rather than grown.

``_loop`` takes the next arrival or event and hands it to a step: ``_arrival``, ``_event``
(capacity steps: ``_capacity``, door schedules: ``_opening``, readmissions: ``_readmission``),
an admission (``_admit``: ``Model._admit``), or a process resumed (``_run_process``), which
runs the states of one process kind at a time, each in the order of the generator it mirrors:
``_acute`` (``A_*``: ``Model._acute``), ``_assess`` (``AS_*``: ``_assess``), ``_downstream``
(``D_*``: ``_downstream``, ``_already_in``, ``_readmitted``) and ``_referral`` (``R_*``:
``_referral``). A change to the model reads side by side with its twin here;
``tests/test_compiled.py`` fails on any difference between the two.
"""

from __future__ import annotations

import numba
import numpy as np

from flowsim.fields import (
    ACUTE,
    ARRIVE_FRONT_DOOR,
    ARRIVE_READY,
    NO_CODE,
    START_QUEUED,
    V_LEAVE,
    V_OUTCOME,
    V_PATHWAY,
    V_READY,
    W_END,
)  # fmt: skip
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
    EV_CAPACITY,
    EV_HOP,
    EV_OPENING,
    EV_RELEASE,
    EV_RESUME,
    F_AT,
    F_DEADLINE,
    F_P_SINCE,
    F_T_READY,
    FULL_READMISSIONS,
    FULL_TURNED,
    INF,
    NORMAL,
    OK,
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
    hand_over,
    new_process,
    new_visit,
    new_wait,
    pop,
    push,
    readmit_at,
    release,
    request,
    take,
    wake_at,
)  # fmt: skip
from flowsim.patients import COMMUNITY, DEATH, FRONT_DOOR, HOME, OPEN, PROCESS, READMIT

__all__ = ["FULL_READMISSIONS", "FULL_TURNED", "OK", "run"]

# -- process states, grouped by the kind of process that runs them ---------------------------
# an acute episode (model.Model._acute)
A_INIT, A_BOARDED, A_TREATED_OR_DIED, A_AFTER_TREATMENT, A_TARGET_LOOP, A_TARGET_WAITED = range(6)
A_LEAVE = 6
# an assessment (_assess): within an acute episode (from AS_START), or a process of its own
AS_START, AS_GRANTED, AS_DONE = 7, 8, 9
# stays after acute care (_downstream), people there at day 0 (_already_in)
D_ENTER, D_STAY_END, D_NEXT_WAITED, D_MOVE, D_READMITTED, ALREADY_IN = 10, 11, 12, 13, 14, 15
# community referrals (_referral)
R_INIT, R_GRANTED = 16, 17
END = 18
# kinds of acute episode
K_FRONT_DOOR, K_READY, K_IN_TREATMENT, K_QUEUED = 0, 1, 2, 3


@numba.njit(cache=True)
def run(pt, t, s, arrival_time, arrival_row, arrival_kind, start_row, start_kind, start_code,
        first_call, until):  # fmt: skip
    """Run the loop on patients ``pt`` (``loopstate.Patients``), tables ``t`` (``Tables``) and
    state ``s`` (``State``) up to ``until`` (events at it are left for the next call). Arrivals
    in time order: time, row, kind (``fields.ARRIVE_*``, else a service); with ``first_call``,
    the state is set for day 0, with the people in care then in creation order (row, kind
    ``fields.START_*``, service). Returns the status (``OK`` or what ran out) and its argument,
    the numbers of stays and waits recorded, the episodes made at day 0 (-1 if not the first
    call) and the number of turn-aways."""
    n_initial = -1
    if first_call:
        _start(pt, t, s, start_row, start_kind, start_code)
        n_initial = s.c[C_EPISODES]
    _loop(pt, t, s, arrival_time, arrival_row, arrival_kind, until)
    c = s.c
    return c[C_STATUS], c[C_STATUS_ARG], c[C_VISITS], c[C_WAITS], n_initial, c[C_TURNED]


@numba.njit(cache=True)
def _start(pt, t, s, start_row, start_kind, start_code):
    """The state at day 0: pools, and the processes made in Model.__init__."""
    c, pools, pi = s.c, s.pools, s.pi
    n_services = t.capacity.shape[0]
    c[:] = 0
    s.readmitted[:] = 0
    for k in range(n_services):
        pools[k, :] = 0
        pools[k, Q_CAP], pools[k, Q_OPEN], pools[k, Q_HEAD], pools[k, Q_TAIL] = (
            t.capacity[k], 1, -1, -1,
        )  # fmt: skip
    # processes made in Model.__init__: capacity schedules and door schedules, then day 0
    for k in range(n_services):
        if t.step_count[k] > 1:
            push(s.ht, s.hk, c, 0.0, URGENT, EV_CAPACITY, k, 0)
        has_closed_day = False
        for d in range(7):
            if not t.open_days[k, d]:
                has_closed_day = True
        if has_closed_day:
            push(s.ht, s.hk, c, 0.0, URGENT, EV_OPENING, k, 0)
    for j in range(start_row.shape[0]):
        row, kind, code = start_row[j], start_kind[j], start_code[j]
        ep = c[C_EPISODES]
        c[C_EPISODES] += 1
        if kind == START_QUEUED or code == ACUTE:
            pools[ACUTE, Q_BUSY] += 1
            pid = new_process(s, A_INIT, row, ep, ep)
            pi[pid, P_KIND] = K_QUEUED if kind == START_QUEUED else K_IN_TREATMENT
            if kind == START_QUEUED:
                pi[pid, P_QUEUED_FOR] = code
            push(s.ht, s.hk, c, 0.0, URGENT, EV_RESUME, pid, pi[pid, P_GEN])
        else:  # Model._already_in
            pools[code, Q_BUSY] += 1
            pid = new_process(s, ALREADY_IN, row, ep, ep)
            pi[pid, P_CODE] = code
            pi[pid, P_VISIT] = new_visit(
                s, ep, ep, code, 0.0, np.nan, np.nan, OPEN, pt.pathway[row], pt.group[row]
            )
            if pt.stay[row, code] < t.horizon:
                wake_at(s, pt.stay[row, code], pid)


# -- the loop: the next arrival or event, then the process it resumes ----------------------------
@numba.njit(cache=True)
def _loop(pt, t, s, arrival_time, arrival_row, arrival_kind, until):
    """Events and arrivals before ``until``, in SimPy's order."""
    c, ht, hk = s.c, s.ht, s.hk
    n_arrivals = arrival_time.shape[0]
    k_arrival = 0
    c[C_ADMIT_ROW] = -1
    while c[C_STATUS] == OK:
        next_arrival = arrival_time[k_arrival] if k_arrival < n_arrivals else INF
        next_event = ht[0] if c[C_HEAP] > 0 else INF
        if next_arrival <= next_event:
            if next_arrival >= until:
                break
            now = next_arrival
            pid = _arrival(s, arrival_row[k_arrival], arrival_kind[k_arrival])
            k_arrival += 1
        else:
            if next_event >= until:
                break
            now = next_event
            payload = hk[0, 1]
            pop(ht, hk, c)
            pid = _event(pt, t, s, now, payload & 15, payload >> 24, (payload >> 4) & B_MASK)
        while True:  # run the process until it waits or ends; then an admission, which may
            if pid >= 0:  # start a process at once
                _run_process(pt, t, s, pid, now)
            if c[C_ADMIT_ROW] < 0:
                break
            pid = _admit(pt, t, s, now)


@numba.njit(cache=True)
def _arrival(s, row, kind):
    """Model.arrive: a front-door admission to make, or the process to start now (-1: none)."""
    c = s.c
    ep = c[C_EPISODES]
    c[C_EPISODES] += 1
    if kind == ARRIVE_FRONT_DOOR:
        c[C_ADMIT_ROW], c[C_ADMIT_EP], c[C_ADMIT_PERSON] = row, ep, ep
        return -1
    if kind == ARRIVE_READY:
        pid = new_process(s, A_INIT, row, ep, ep)
        s.pi[pid, P_KIND] = K_READY
        return pid
    pid = new_process(s, R_INIT, row, ep, ep)
    s.pi[pid, P_CODE] = kind
    return pid


@numba.njit(cache=True)
def _event(pt, t, s, now, kind, a, b):
    """An event; returns the process it resumes (-1: none)."""
    pi = s.pi
    if kind == EV_RESUME:  # process a, if still at generation b
        if (pi[a, P_GEN] & B_MASK) == b:
            return a
    elif kind == EV_HOP:  # a condition fires once, then resumes its process
        if (pi[a, P_GEN] & B_MASK) == b and not pi[a, P_FIRED]:
            pi[a, P_FIRED] = 1
            push(s.ht, s.hk, s.c, now, NORMAL, EV_RESUME, a, b)
    elif kind == EV_RELEASE:  # a place whose release was known when it was taken
        release(s, a, now)
    elif kind == EV_CAPACITY:
        _capacity(t, s, now, a, b)
    elif kind == EV_OPENING:
        _opening(t, s, now, a, b)
    else:  # EV_READMIT: a new acute episode for person a of group b
        _readmission(pt, s, a, b)
    return -1


@numba.njit(cache=True)
def _capacity(t, s, now, k, step):
    """Model._capacity: pool ``k`` takes its capacity step ``step``; the next is scheduled."""
    first = t.step_first[k]
    if step > 0:
        s.pools[k, Q_CAP] = t.step_capacity[first + step]
        hand_over(s, k, now)
    if step + 1 < t.step_count[k]:
        day = t.step_day[first + step + 1]
        push(s.ht, s.hk, s.c, now + (day - now), NORMAL, EV_CAPACITY, k, step + 1)


@numba.njit(cache=True)
def _opening(t, s, now, k, day):
    """Model._opening: the door of pool ``k`` on ``day``, opened or closed; the next day's is
    scheduled."""
    if day < t.horizon:
        is_open = 1 if t.open_days[k, (t.first_weekday + day) % 7] else 0
        if is_open != s.pools[k, Q_OPEN]:
            s.pools[k, Q_OPEN] = is_open
            if is_open:
                hand_over(s, k, now)
        push(s.ht, s.hk, s.c, now + ((day + 1) - now), NORMAL, EV_OPENING, k, day + 1)


@numba.njit(cache=True)
def _readmission(pt, s, person, g):
    """Model._readmit: an admission to make for ``person`` with the next readmission row of group
    ``g`` (none left: the run stops, to be repeated with more)."""
    c = s.c
    k = s.readmitted[g]
    if k >= pt.readmit_rows[g]:
        c[C_STATUS], c[C_STATUS_ARG] = FULL_READMISSIONS, g
        return
    s.readmitted[g] += 1
    c[C_ADMIT_ROW], c[C_ADMIT_PERSON] = pt.readmit_base[g] + k, person
    c[C_ADMIT_EP] = c[C_EPISODES]
    c[C_EPISODES] += 1


@numba.njit(cache=True)
def _admit(pt, t, s, now):
    """Model._admit: the admission waiting in the counters; returns the acute process to start
    now, or -1 when a free bed and pathway 0 make the whole stay known now (no process)."""
    c = s.c
    row, ep, person = c[C_ADMIT_ROW], c[C_ADMIT_EP], c[C_ADMIT_PERSON]
    c[C_ADMIT_ROW] = -1
    if pt.pathway[row] != 0 or not take(s.pools, ACUTE):
        pid = new_process(s, A_INIT, row, ep, person)
        s.pi[pid, P_KIND] = K_FRONT_DOOR
        return pid
    g = pt.group[row]
    treat = pt.treatment[row]
    ready = now + treat
    vi = new_visit(s, ep, person, ACUTE, now, ready, ready, DEATH, 0, g)
    delay = treat
    if not pt.dies[row]:
        proc = pt.process[row]
        delay = treat + proc
        leave = now + delay
        if proc > 0:
            new_wait(s, ep, person, ACUTE, PROCESS, t.proc_wait[0, 0], t.proc_wait[0, 1], ready,
                     leave)  # fmt: skip
        s.visits[V_LEAVE, vi] = leave
        s.visits[V_OUTCOME, vi] = HOME
        if pt.u_readmit[row] < t.readmit_p[0]:
            at = leave + pt.readmit_delay[row]
            if at < t.horizon:
                readmit_at(s, now, at, person, g)
    push(s.ht, s.hk, c, now + delay, NORMAL, EV_RELEASE, ACUTE, 0)
    return -1


# -- processes: each runs its states until it waits, ends, or goes on as another kind ------------
@numba.njit(cache=True)
def _run_process(pt, t, s, pid, now):
    """Resume process ``pid``: run it until it waits or ends."""
    pi = s.pi
    pi[pid, P_GEN] += 1
    state = pi[pid, P_STATE]
    waits = False
    while not waits and state != END:
        if state <= A_LEAVE:
            state, waits = _acute(pt, t, s, pid, now, state)
        elif state <= AS_DONE:
            state, waits = _assess(pt, t, s, pid, now, state)
        elif state <= ALREADY_IN:
            state, waits = _downstream(pt, t, s, pid, now, state)
        else:
            state, waits = _referral(t, s, pid, now, state)
    pi[pid, P_STATE] = state
    if state == END:
        s.free[s.c[C_FREE]] = pid
        s.c[C_FREE] += 1


@numba.njit(cache=True)
def _wait_for_place(t, s, pid, ep, person, place, code, deadline, now):
    """Someone in ``place``, in the line for ``code``, waits for a place there (model.py: ``yield
    ev``) or, with a ``deadline`` (not ``INF``), for whichever comes first (``yield ev |
    env.timeout(deadline - now)``: the condition fires once, ``EV_HOP``). The wait is recorded.
    Returns True if the process must now wait; False if the deadline has already come (SimPy
    does not yield), so the caller goes on at once. Then ``_waited``."""
    pi = s.pi
    pi[pid, P_WAIT] = new_wait(s, ep, person, place, code, t.wait_code[code, 0],
                               t.wait_code[code, 1], now, np.nan)  # fmt: skip
    if deadline == INF:
        pi[pid, P_COND] = 0
        return True
    if deadline <= now:
        return False
    pi[pid, P_COND], pi[pid, P_FIRED] = 1, 0
    push(s.ht, s.hk, s.c, now + (deadline - now), NORMAL, EV_HOP, pid, pi[pid, P_GEN])
    return True


@numba.njit(cache=True)
def _waited(s, pid, code, now):
    """After ``_wait_for_place``: True if the place in ``code`` came first; if the deadline did,
    the request is withdrawn (``Pool.cancel``). The wait ends now either way."""
    granted = s.pi[pid, P_GRANTED] != 0
    if not granted:
        cancel(s, code, pid, now)
    s.waits[W_END, s.pi[pid, P_WAIT]] = now
    return granted


@numba.njit(cache=True)
def _acute(pt, t, s, pid, now, state):
    """Model._acute, from ``state``: returns the next state and whether the process waits."""
    pi, pf, visits = s.pi, s.pf, s.visits
    row, ep, person = pi[pid, P_ROW], pi[pid, P_EP], pi[pid, P_PERSON]
    g = pt.group[row]
    while True:
        if state == A_INIT:
            kind = pi[pid, P_KIND]
            pi[pid, P_WAIT] = -1
            if kind == K_FRONT_DOOR or kind == K_READY:
                if not request(s, ACUTE, pid):
                    pi[pid, P_WAIT] = new_wait(s, ep, person, FRONT_DOOR, ACUTE, NO_CODE,
                                               NO_CODE, now, np.nan)  # fmt: skip
                    pi[pid, P_COND] = 0
                    return A_BOARDED, True
            state = A_BOARDED
        elif state == A_BOARDED:
            if pi[pid, P_WAIT] >= 0:
                s.waits[W_END, pi[pid, P_WAIT]] = now
            kind = pi[pid, P_KIND]
            p = pt.pathway[row]
            pi[pid, P_PATHWAY] = p
            vi = new_visit(s, ep, person, ACUTE, now, np.nan, np.nan, OPEN, p, g)
            pi[pid, P_VISIT] = vi
            treat = pt.treatment[row] if kind == K_FRONT_DOOR or kind == K_IN_TREATMENT else 0.0
            if treat > 0 and pt.dies[row]:
                wake_at(s, now + treat, pid)
                pf[pid, F_T_READY] = -1.0  # marks death
                return A_TREATED_OR_DIED, True
            t_ready = now + treat
            visits[V_READY, vi] = t_ready
            pf[pid, F_T_READY] = t_ready
            queued_for = pi[pid, P_QUEUED_FOR]
            pi[pid, P_TARGET] = t.to[p, g] if queued_for < 0 else queued_for
            pi[pid, P_ASSESSED] = 1 if (not t.needs_assessment[p] or queued_for >= 0) else 0
            pi[pid, P_D2A] = 0
            proc = pt.process[row] if queued_for < 0 else 0.0
            if proc > 0:
                new_wait(s, ep, person, ACUTE, PROCESS, t.proc_wait[p, 0], t.proc_wait[p, 1],
                         t_ready, now + (treat + proc))  # fmt: skip
            if treat + proc > 0:
                wake_at(s, now + (treat + proc), pid)
                return A_TREATED_OR_DIED, True
            state = A_AFTER_TREATMENT
        elif state == A_TREATED_OR_DIED:
            if pf[pid, F_T_READY] < 0:  # died in hospital
                vi = pi[pid, P_VISIT]
                visits[V_READY, vi] = visits[V_LEAVE, vi] = now
                visits[V_OUTCOME, vi] = DEATH
                release(s, ACUTE, now)
                return END, False
            state = A_AFTER_TREATMENT
        elif state == A_AFTER_TREATMENT:
            p = pi[pid, P_PATHWAY]
            pf[pid, F_P_SINCE] = pf[pid, F_T_READY]
            if pi[pid, P_QUEUED_FOR] < 0:
                if not pi[pid, P_ASSESSED] and t.d2a[p]:
                    pi[pid, P_D2A] = pi[pid, P_ASSESSED] = 1
                if not pi[pid, P_ASSESSED]:
                    pi[pid, P_ASSESSED] = 1
                    pi[pid, P_DELAYS], pi[pid, P_PLACE] = 1, ACUTE
                    return AS_START, False
            state = A_TARGET_LOOP
        elif state == A_TARGET_LOOP:  # wait for the next setting, holding the bed
            target = pi[pid, P_TARGET]
            if target < 0:
                state = A_LEAVE
                continue
            target, waiting = ask_place(s, t.when_full, target, pid, ep, person, ACUTE, now)
            pi[pid, P_TARGET] = target
            if not waiting:
                state = A_LEAVE
                continue
            p = pi[pid, P_PATHWAY]
            at = INF  # need may escalate while delayed
            if t.escalate and 1 <= p <= 2:
                at = pf[pid, F_P_SINCE] + pt.decondition[row, p - 1]
            pf[pid, F_AT] = at
            state = A_TARGET_WAITED
            if _wait_for_place(t, s, pid, ep, person, ACUTE, target, at, now):
                return state, True
        elif state == A_TARGET_WAITED:
            if _waited(s, pid, pi[pid, P_TARGET], now):
                state = A_LEAVE
                continue
            p = pi[pid, P_PATHWAY] + 1  # escalated: the next pathway's setting instead
            pi[pid, P_PATHWAY] = p
            pf[pid, F_P_SINCE] = pf[pid, F_AT]
            visits[V_PATHWAY, pi[pid, P_VISIT]] = p
            pi[pid, P_TARGET] = t.to[p, g]
            if not pi[pid, P_ASSESSED]:  # assessed at the destination instead
                pi[pid, P_D2A] = pi[pid, P_ASSESSED] = 1
            state = A_TARGET_LOOP
        else:  # A_LEAVE
            release(s, ACUTE, now)
            vi = pi[pid, P_VISIT]
            target = pi[pid, P_TARGET]
            visits[V_LEAVE, vi] = now
            visits[V_OUTCOME, vi] = target
            deadline = INF
            if pt.u_readmit[row] < t.readmit_p[pi[pid, P_PATHWAY]]:
                deadline = now + pt.readmit_delay[row]
            pf[pid, F_DEADLINE] = deadline
            if target < 0:  # home, or lost (out of the model: no readmission)
                if target == HOME and deadline < t.horizon:
                    readmit_at(s, now, deadline, person, g)
                return END, False
            pi[pid, P_CODE] = target
            return D_ENTER, False


@numba.njit(cache=True)
def _assess(pt, t, s, pid, now, state):
    """Model._assess, from ``state``: within an acute episode (``P_DELAYS``: the patient waits
    in ``P_PLACE``), or a process of its own (discharge to assess)."""
    pi = s.pi
    row, ep, person = pi[pid, P_ROW], pi[pid, P_EP], pi[pid, P_PERSON]
    k = t.assessment
    if state == AS_START:
        if pi[pid, P_DELAYS]:
            pi[pid, P_WAIT_AS] = new_wait(s, ep, person, pi[pid, P_PLACE], k, t.wait_code[k, 0],
                                          t.wait_code[k, 1], now, np.nan)  # fmt: skip
        if not request(s, k, pid):
            pi[pid, P_COND] = 0
            return AS_GRANTED, True
        state = AS_GRANTED
    if state == AS_GRANTED:
        pi[pid, P_VISIT_AS] = new_visit(s, ep, person, k, now, np.nan, np.nan, OPEN,
                                        pt.pathway[row], pt.group[row])  # fmt: skip
        wake_at(s, now + pt.assess[row], pid)
        return AS_DONE, True
    # AS_DONE
    release(s, k, now)
    va = pi[pid, P_VISIT_AS]
    s.visits[V_READY, va] = s.visits[V_LEAVE, va] = now
    delays = pi[pid, P_DELAYS]
    s.visits[V_OUTCOME, va] = pi[pid, P_PLACE] if delays else HOME
    if pi[pid, P_WAIT_AS] >= 0:
        s.waits[W_END, pi[pid, P_WAIT_AS]] = now
    return (A_TARGET_LOOP if delays else END), False


@numba.njit(cache=True)
def _downstream(pt, t, s, pid, now, state):
    """Model._downstream (and ``_already_in``, ``_readmitted``), from ``state``: stays after
    acute care (the place in ``P_CODE`` held), moving on by the routing until home, death, or
    readmission at the deadline ``F_DEADLINE``."""
    pi, pf, visits = s.pi, s.pf, s.visits
    row, ep, person = pi[pid, P_ROW], pi[pid, P_EP], pi[pid, P_PERSON]
    g = pt.group[row]
    while True:
        if state == D_ENTER:
            code = pi[pid, P_CODE]
            pi[pid, P_VISIT] = new_visit(s, ep, person, code, now, np.nan, np.nan, OPEN,
                                         pt.pathway[row], g)  # fmt: skip
            if pi[pid, P_D2A]:  # assessed here, during the stay, by its own process
                pi[pid, P_D2A] = 0
                q = new_process(s, AS_START, row, ep, person)
                pi[q, P_DELAYS], pi[q, P_PLACE] = 0, code
                push(s.ht, s.hk, s.c, now, URGENT, EV_RESUME, q, pi[q, P_GEN])
            stay = pt.stay[row, code]
            deadline = pf[pid, F_DEADLINE]
            if now + stay >= deadline:
                wake_at(s, now + max(deadline - now, 0.0), pid)
                return D_READMITTED, True
            nxt = pt.route[row, code]
            if nxt < 0:  # the last stay (then home or death): known now, so no process
                end = now + stay
                vi = pi[pid, P_VISIT]
                visits[V_READY, vi] = visits[V_LEAVE, vi] = end
                visits[V_OUTCOME, vi] = nxt
                push(s.ht, s.hk, s.c, end, NORMAL, EV_RELEASE, code, 0)
                if nxt == HOME and deadline < t.horizon:
                    readmit_at(s, end, deadline, person, g)
                return END, False
            wake_at(s, now + stay, pid)
            return D_STAY_END, True
        elif state == ALREADY_IN:  # the residual stay is over; the process starts now
            push(s.ht, s.hk, s.c, now, URGENT, EV_RESUME, pid, pi[pid, P_GEN])
            return D_STAY_END, True
        elif state == D_STAY_END:
            code = pi[pid, P_CODE]
            visits[V_READY, pi[pid, P_VISIT]] = now
            nxt = pt.route[row, code]
            waiting = False
            if nxt >= 0:
                nxt, waiting = ask_place(s, t.when_full, nxt, pid, ep, person, code, now)
            pi[pid, P_NEXT] = nxt
            state = D_MOVE
            if waiting:  # the deadline is after now (the stay ended before it)
                state = D_NEXT_WAITED
                if _wait_for_place(t, s, pid, ep, person, code, nxt, pf[pid, F_DEADLINE], now):
                    return state, True
        elif state == D_NEXT_WAITED:
            state = D_MOVE if _waited(s, pid, pi[pid, P_NEXT], now) else D_READMITTED
        elif state == D_MOVE:
            code, nxt = pi[pid, P_CODE], pi[pid, P_NEXT]
            release(s, code, now)
            vi = pi[pid, P_VISIT]
            visits[V_LEAVE, vi] = now
            visits[V_OUTCOME, vi] = nxt
            if nxt < 0:
                deadline = pf[pid, F_DEADLINE]
                if nxt == HOME and deadline < t.horizon:
                    readmit_at(s, now, deadline, person, g)
                return END, False
            pi[pid, P_CODE] = nxt
            state = D_ENTER
        else:  # D_READMITTED: Model._readmitted
            release(s, pi[pid, P_CODE], now)
            vi = pi[pid, P_VISIT]
            if visits[V_READY, vi] != visits[V_READY, vi]:
                visits[V_READY, vi] = now
            visits[V_LEAVE, vi] = now
            visits[V_OUTCOME, vi] = READMIT
            _readmission(pt, s, person, g)
            return END, False


@numba.njit(cache=True)
def _referral(t, s, pid, now, state):
    """Model._referral, from ``state``: waits at home for a place, then the stays."""
    pi = s.pi
    ep, code = pi[pid, P_EP], pi[pid, P_CODE]
    if state == R_INIT:
        code, waiting = ask_place(s, t.when_full, code, pid, ep, ep, COMMUNITY, now)
        if code < 0:  # turned away: lost, or home
            return END, False
        pi[pid, P_CODE] = code
        if waiting and _wait_for_place(t, s, pid, ep, ep, COMMUNITY, code, INF, now):
            return R_GRANTED, True
        return D_ENTER, False
    _waited(s, pid, code, now)  # R_GRANTED
    return D_ENTER, False
