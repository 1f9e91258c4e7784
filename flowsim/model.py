"""One replication of the whole system: SimPy processes for patients moving between care settings.

Each setting is a ``Pool`` of places, first come first served. A patient who needs the next setting
keeps their current place while waiting (blocking after service), so a wait in an acute bed is a
delayed transfer of care; unless the setting turns away whoever finds it full (``when_full``:
``_place``). Every stay and every wait is recorded as a row in plain lists, turned into
NumPy arrays at the end (``Events``); ``results.py`` turns those into tables and KPIs.
"""

from __future__ import annotations

import gc
import math

import numpy as np
import simpy

from flowsim import patients
from flowsim.config import System
from flowsim.engine import Pool, Process, at, run_until
from flowsim.fields import (
    ACUTE,
    NO_CODE,
    TURNED_FIELDS,
    V_LEAVE,
    V_OUTCOME,
    V_PATHWAY,
    V_READY,
    VISIT_FIELDS,
    W_END,
    WAIT_FIELDS,
)
from flowsim.patients import COMMUNITY, DEATH, FRONT_DOOR, HOME, OPEN, PROCESS, READMIT
from flowsim.plan import READMISSION_BLOCK, WAIT, Arrivals, Plan, plan
from flowsim.records import Events, Held, close, rows_to_columns
from flowsim.streams import Streams
from flowsim.tally import DRAW_DAYS, FOLD_DAYS, Measure, Tally, checkpoints

_NAN = math.nan
_INF = math.inf


class _Rows:
    """A cohort's columns as Python lists: indexing a list is much cheaper than a NumPy array."""

    __slots__ = (
        "group",
        "pathway",
        "treatment",
        "dies",
        "process",
        "assess",
        "decondition",
        "u_readmit",
        "readmit_delay",
        "acute",
        "rkey",
        "stay",
        "route",
    )

    def __init__(self, c: patients.Cohort) -> None:
        self.group = c.group.tolist()
        self.pathway = c.pathway.tolist()
        self.treatment = c.treatment.tolist()
        self.dies = c.dies.tolist()
        self.process = c.process.tolist()
        self.assess = c.assess.tolist()
        self.decondition = c.decondition.tolist()
        self.u_readmit = c.u_readmit.tolist()
        self.readmit_delay = c.readmit_delay.tolist()
        self.acute = c.acute.tolist()
        self.rkey = c.rkey.tolist()
        self.stay = {k: v.tolist() for k, v in c.stay.items()}
        self.route = {k: v.tolist() for k, v in c.route.items()}

    def one(self, i: int) -> _Rows:
        """Row ``i`` alone (as row 0), for someone settling into a long stay: holding it, not the
        whole block, lets the block go once its other patients are done."""
        row = object.__new__(_Rows)
        for name in _Rows.__slots__[:-2]:
            setattr(row, name, [getattr(self, name)[i]])
        row.stay = {k: [v[i]] for k, v in self.stay.items()}
        row.route = {k: [v[i]] for k, v in self.route.items()}
        return row


class Model:
    """The system for one replication, set up from its ``Plan``: ``run()``, then read the events."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.system = plan.system
        self.horizon = plan.horizon
        self.layout = plan.layout
        self.env = env = simpy.Environment()
        self.capacity_steps = plan.capacity_steps
        self.pools = [Pool(env, st[0][1]) for st in self.capacity_steps]
        self.visits: list[list] = []
        self.waits: list[list] = []
        self.turned: list[list] = []
        self._episodes = 0
        self._readmission_rows: dict[int, tuple[_Rows, int]] = {}
        self._readmission_blocks = [0] * plan.layout.n_keys
        self.to, self.proc_wait, self.wait_code = plan.to, plan.proc_wait, plan.wait_code
        self.when_full = plan.when_full
        self.needs_assessment, self.d2a = plan.needs_assessment, plan.d2a
        self.readmit_p, self.assess_of, self.escalate = (
            plan.readmit_p,
            plan.assess_of,
            plan.escalate,
        )
        for k, st in enumerate(self.capacity_steps):
            if len(st) > 1:
                Process(env, self._capacity(self.pools[k], st))
            if not all(plan.open_days[k]):
                Process(env, self._opening(self.pools[k], plan.open_days[k]))
        self._start_state()
        self.n_initial = self._episodes
        self._merge_arrivals(plan.arrivals)

    # -- set-up ------------------------------------------------------------------------------

    def _start_state(self) -> None:
        """People already in care at day 0 (drawn by the plan) take their places."""
        for start in self.plan.starts:
            code, what = start.code, start.what
            rows = _Rows(start.cohort)
            for i in range(len(start.cohort)):
                self.pools[ACUTE if what == "queue" else code].busy += 1
                ep = self._new_episode()
                if what == "queue":  # (only a system of one acute trust starts with a queue)
                    Process(self.env, self._acute(rows, i, ep, ep, "queued", code))
                elif code < self.layout.n_acute:
                    Process(self.env, self._acute(rows, i, ep, ep, "in_treatment"))
                else:
                    self._already_in(rows, i, ep, code)

    def _already_in(self, rows: _Rows, i: int, ep: int, code: int) -> None:
        """Someone in a setting at day 0: no process until their (residual) stay ends, and none
        at all if it ends after the horizon (most care home residents)."""
        visit = [ep, ep, code, 0.0, _NAN, _NAN, OPEN, rows.pathway[i], rows.group[i]]
        self.visits.append(visit)
        stay = rows.stay[code][i]
        if stay < self.horizon:
            self.env.timeout(stay).callbacks.append(
                lambda _ev: Process(
                    self.env, self._downstream(rows, i, ep, ep, code, _INF, False, visit)
                )
            )

    def _new_episode(self) -> int:
        self._episodes += 1
        return self._episodes - 1

    # -- processes ---------------------------------------------------------------------------

    def _capacity(self, pool: Pool, steps: list[tuple[float, int]]):
        env = self.env
        for day, capacity in steps[1:]:
            yield env.timeout(day - env.now)
            pool.set_capacity(capacity)

    def _opening(self, pool: Pool, open_days: list[bool]):
        """Open the service's door on its open days of the week, close it on the others."""
        env = self.env
        first = self.system.start_date.weekday()
        day = 0
        while day < self.horizon:
            is_open = open_days[(first + day) % 7]
            if is_open != pool.open:
                pool.set_open(is_open)
            day += 1
            yield env.timeout(day - env.now)

    def _merge_arrivals(self, arrivals: Arrivals) -> None:
        """Arrivals are known in advance (merged in time order by the plan), so they are fed to
        the event loop (``engine.run_until``) rather than scheduled as events; their attributes
        are drawn a block at a time (``_draw``)."""
        self._arrivals = arrivals
        self._arrival_kinds = arrivals.kinds
        self._block = 0  # the first arrival of the block drawn
        self._block_rows = np.zeros(len(arrivals.names), dtype=np.int64)  # its row in each stream
        self._times: list[float] = []

    def _draw(self, k0: int, k1: int) -> list[float]:
        """Draw the attributes of arrivals ``k0 .. k1`` (in time order; ``k0`` not before the
        block drawn last); return their times."""
        a = self._arrivals
        first = self._block_rows + np.bincount(a.stream[self._block : k0], minlength=len(a.names))
        stream = a.stream[k0:k1]
        counts = np.bincount(stream, minlength=len(a.names))
        self._arrival_rows = [
            _Rows(a.cohort(s, int(first[s]), int(n))) if n else None for s, n in enumerate(counts)
        ]
        self._arrival_stream = stream.tolist()
        self._arrival_index = (a.index[k0:k1] - first[stream]).tolist()
        self._block, self._block_rows = k0, first
        return a.times[k0:k1].tolist()

    def arrive(self, k: int) -> None:
        """The k-th arrival (in time order) happens now."""
        j = k - self._block
        stream = self._arrival_stream[j]
        rows, i = self._arrival_rows[stream], self._arrival_index[j]
        kind = self._arrival_kinds[stream]
        ep = self._new_episode()
        if kind == "front_door":
            self._admit(rows, i, ep, ep)
        elif kind == "ready_to_leave":
            Process(self.env, self._acute(rows, i, ep, ep, kind), now=True)
        else:
            Process(self.env, self._referral(rows, i, ep, kind), now=True)

    def _admit(self, rows: _Rows, i: int, ep: int, person: int) -> None:
        """An admission through the front door. The common case (a bed is free, pathway 0: home
        with no new support) needs no process and no event: its whole stay is known on arrival, so
        the bed's release is booked in the pool (``hold_until``). Everyone else gets an ``_acute``
        process."""
        a = rows.acute[i]
        acute = self.pools[a]
        if rows.pathway[i] != 0 or not acute.take():
            Process(self.env, self._acute(rows, i, ep, person, "front_door"), now=True)
            return
        now = self.env.now
        g = rows.group[i]
        # times are computed as SimPy computes them (now + delay), so the recorded leave is the
        # exact instant the bed is released
        treat = rows.treatment[i]
        ready = now + treat
        visit = [ep, person, a, now, ready, ready, DEATH, 0, g]
        delay = treat
        if not rows.dies[i]:
            proc = rows.process[i]
            delay = treat + proc
            leave = now + delay
            if proc > 0:
                reason, resp = self.proc_wait[0]
                self.waits.append([ep, person, a, PROCESS, reason, resp, ready, leave])
            visit[V_LEAVE] = leave
            visit[V_OUTCOME] = HOME
            if rows.u_readmit[i] < self.readmit_p[0]:
                self._readmit_at(leave + rows.readmit_delay[i], person, rows.rkey[i])
        self.visits.append(visit)
        acute.hold_until(now + delay)

    def _place(self, code: int, ep: int, person: int, place: int):
        """Ask for a place in ``code`` as someone in ``place`` who would now start to wait for it:
        ``(code, None)`` with the place taken, ``(code, event)`` to wait for it in its line, or,
        turned away by full services (``when_full``), where their rules sent them: ``(another
        code, None or event)`` or ``(HOME or LOST, None)``. Each turn-away is recorded."""
        when_full = self.when_full
        while when_full[code] != WAIT:
            if self.pools[code].take():
                return code, None
            self.turned.append([ep, person, place, code, when_full[code], self.env.now])
            code = when_full[code]
            if code < 0:
                return code, None
        return code, self.pools[code].request()

    def _referral(self, rows: _Rows, i: int, ep: int, code: int):
        """A community referral: waits at home for a place, then stays and moves on."""
        code, ev = self._place(code, ep, ep, COMMUNITY)
        if code < 0:  # turned away: lost, or home
            return
        if ev is not None:
            reason, resp = self.wait_code[code]
            w = [ep, ep, COMMUNITY, code, reason, resp, self.env.now, _NAN]
            self.waits.append(w)
            yield ev
            w[W_END] = self.env.now
        onward = self._downstream(rows, i, ep, ep, code, _INF, False)
        rows = None
        yield from onward

    def _acute(self, rows: _Rows, i: int, ep: int, person: int, kind: str, queued_for: int = -1):
        """An acute episode: boarding, treatment, the discharge process, assessment and the wait for
        the next setting (holding the bed), with deconditioning while delayed."""
        env = self.env
        a = rows.acute[i]
        acute = self.pools[a]
        waits = self.waits
        g = rows.group[i]
        p = rows.pathway[i]
        if kind in ("front_door", "ready_to_leave"):
            ev = acute.request()
            if ev is not None:
                w = [ep, person, FRONT_DOOR, a, NO_CODE, NO_CODE, env.now, _NAN]
                waits.append(w)
                yield ev
                w[W_END] = env.now
        visit = [ep, person, a, env.now, _NAN, _NAN, OPEN, p, g]
        self.visits.append(visit)
        treat = rows.treatment[i] if kind in ("front_door", "in_treatment") else 0.0
        if treat > 0 and rows.dies[i]:
            yield env.timeout(treat)
            visit[V_READY] = visit[V_LEAVE] = env.now
            visit[V_OUTCOME] = DEATH
            acute.release()
            return
        # treatment and the discharge process in one timeout; times past the horizon are
        # cleared when the events are collected
        t_ready = visit[V_READY] = env.now + treat
        to = self.to
        target = to[p][g] if queued_for < 0 else queued_for
        assessed = not self.needs_assessment[p] or queued_for >= 0
        d2a = False
        proc = rows.process[i] if queued_for < 0 else 0.0
        if proc > 0:
            reason, resp = self.proc_wait[p]
            waits.append(
                [ep, person, a, PROCESS, reason, resp, t_ready, env.now + (treat + proc)]
            )
        if treat + proc > 0:
            yield env.timeout(treat + proc)
        if queued_for < 0:
            if not assessed and self.d2a[p]:
                d2a, assessed = True, True
            if not assessed:
                yield from self._assess(rows, i, ep, person, a)
                assessed = True
        # wait for the next setting, holding the bed; need may escalate while delayed
        p_since = t_ready
        decondition = rows.decondition[i]
        while target >= 0:
            target, ev = self._place(target, ep, person, a)
            if ev is None:
                break
            pool = self.pools[target]
            reason, resp = self.wait_code[target]
            w = [ep, person, a, target, reason, resp, env.now, _NAN]
            waits.append(w)
            at = p_since + decondition[p - 1] if self.escalate and 1 <= p <= 2 else _INF
            if at < _INF:
                if at > env.now:
                    yield ev | env.timeout(at - env.now)
                if ev.triggered:
                    w[W_END] = env.now
                    break
                pool.cancel(ev)
                w[W_END] = env.now
                p, p_since = p + 1, at
                visit[V_PATHWAY] = p
                target = to[p][g]
                if not assessed:  # assessed at the destination instead
                    d2a = assessed = True
                continue
            yield ev
            w[W_END] = env.now
            break
        acute.release()
        visit[V_LEAVE] = env.now
        visit[V_OUTCOME] = target
        deadline = _INF
        if rows.u_readmit[i] < self.readmit_p[p]:
            deadline = env.now + rows.readmit_delay[i]
        if target < 0:  # home, or lost (out of the model: no readmission)
            if target == HOME and deadline < _INF:
                self._readmit_at(deadline, person, rows.rkey[i])
            return
        onward = self._downstream(rows, i, ep, person, target, deadline, d2a)
        rows = None  # only the onward stays hold the patient's rows now (see _Rows.one)
        yield from onward

    def _assess(self, rows: _Rows, i: int, ep: int, person: int, place: int, delays=True):
        """A discharge assessment by an assessor (finite capacity). With ``delays`` the patient
        waits in ``place`` for it (recorded as a delay); without (discharge to assess) an assessor
        sees them at home or in the community bed while their stay goes on."""
        env = self.env
        team = self.assess_of[rows.acute[i]]
        pool = self.pools[team]
        w = None
        if delays:
            reason, resp = self.wait_code[team]
            w = [ep, person, place, team, reason, resp, env.now, _NAN]
            self.waits.append(w)
        ev = pool.request()
        if ev is not None:
            yield ev
        visit = [ep, person, team, env.now, _NAN, _NAN, OPEN, rows.pathway[i],
                 rows.group[i]]  # fmt: skip
        self.visits.append(visit)
        yield env.timeout(rows.assess[i])
        pool.release()
        visit[V_READY] = visit[V_LEAVE] = env.now
        visit[V_OUTCOME] = place if delays else HOME
        if w is not None:
            w[W_END] = env.now

    def _downstream(
        self,
        rows: _Rows,
        i: int,
        ep: int,
        person: int,
        code: int,
        deadline: float,
        d2a: bool,
        visit: list | None = None,
    ):
        """Stays in settings after acute care (the place in ``code`` is already held), moving on
        by the routing until home, death, or readmission at ``deadline``. With ``visit`` given,
        the stay in ``code`` has just ended (someone already there at the start)."""
        env = self.env
        pools = self.pools
        g = rows.group[i]
        p = rows.pathway[i]
        key = rows.rkey[i]
        while True:
            if visit is None:
                visit = [ep, person, code, env.now, _NAN, _NAN, OPEN, p, g]
                self.visits.append(visit)
                if d2a:  # discharge to assess: assessed here, during the stay, not in hospital
                    Process(env, self._assess(rows, i, ep, person, code, delays=False))
                    d2a = False
                stay = rows.stay[code][i]
                if env.now + stay >= deadline:
                    yield env.timeout(max(deadline - env.now, 0.0))
                    return self._readmitted(visit, pools[code], person, key)
                nxt = rows.route[code][i]
                if nxt < 0:  # the last stay (then home or death): known now, so no event
                    end = visit[V_READY] = visit[V_LEAVE] = env.now + stay
                    visit[V_OUTCOME] = nxt
                    pools[code].hold_until(end)
                    if nxt == HOME and deadline < _INF:
                        self._readmit_at(deadline, person, key, since=end)
                    return
                if stay > FOLD_DAYS:
                    rows, i = rows.one(i), 0
                yield env.timeout(stay)
            visit[V_READY] = env.now
            nxt = rows.route[code][i]
            if nxt >= 0:
                nxt, ev = self._place(nxt, ep, person, code)
                if ev is not None:
                    reason, resp = self.wait_code[nxt]
                    w = [ep, person, code, nxt, reason, resp, env.now, _NAN]
                    self.waits.append(w)
                    if deadline < _INF:
                        yield ev | env.timeout(deadline - env.now)
                        if not ev.triggered:
                            pools[nxt].cancel(ev)
                            w[W_END] = env.now
                            return self._readmitted(visit, pools[code], person, key)
                    else:
                        yield ev
                    w[W_END] = env.now
            pools[code].release()
            visit[V_LEAVE] = env.now
            visit[V_OUTCOME] = nxt
            if nxt < 0:
                if nxt == HOME and deadline < _INF:
                    self._readmit_at(deadline, person, key)
                return
            code = nxt
            visit = None

    # -- readmissions ------------------------------------------------------------------------

    def _readmitted(self, visit: list, pool: Pool, person: int, key: int) -> None:
        pool.release()
        visit[V_READY] = visit[V_READY] if visit[V_READY] == visit[V_READY] else self.env.now
        visit[V_LEAVE] = self.env.now
        visit[V_OUTCOME] = READMIT
        self._readmit(person, key)

    def _readmit_at(self, t: float, person: int, key: int, since: float | None = None) -> None:
        """Readmit at ``t``, as a timeout set at ``since`` (default now) would: at
        ``since + (t - since)``, which can differ from ``t`` in the last bit."""
        if t < self.horizon:
            if since is None:
                ev = self.env.timeout(t - self.env.now)
            else:
                ev = at(self.env, since + (t - since))
            ev.callbacks.append(lambda _ev: self._readmit(person, key))

    def _readmit(self, person: int, key: int) -> None:
        """A new acute episode for the same person, at the same trust, with attributes from the
        readmission streams of their group there (``key``; its k-th readmission gets row k)."""
        rows, k = self._readmission_rows.get(key, (None, READMISSION_BLOCK))
        if k == READMISSION_BLOCK:
            block = self._readmission_blocks[key]
            self._readmission_blocks[key] += 1
            rows, k = _Rows(self.plan.readmission_block(key, block)), 0
        self._readmission_rows[key] = (rows, k + 1)
        ep = self._new_episode()
        self._admit(rows, k, ep, person)

    # -- run ---------------------------------------------------------------------------------

    def run(self, measure: Measure | None = None) -> Events:
        """Run to the horizon. Without ``measure``, every record is kept and returned. With it,
        records are folded into a ``Tally`` at each checkpoint, and those finished and past are
        let go (kept aside too if ``measure.keep``): memory then does not grow with the
        horizon."""
        times = self._arrivals.times
        n = len(times)
        if measure is None:
            run_until(self.env, self.horizon, self._draw(0, n), self.arrive)
            self._stop()
            return close(
                rows_to_columns(self.visits, VISIT_FIELDS),
                rows_to_columns(self.waits, WAIT_FIELDS),
                self.plan,
                self.n_initial,
                rows_to_columns(self.turned, TURNED_FIELDS),
            )
        tally = Tally(self.layout, self.horizon, self.n_initial, self.capacity_steps, measure)
        visits = Held(VISIT_FIELDS, "leave", measure.keep, self.visits)
        waits = Held(WAIT_FIELDS, "end", measure.keep, self.waits)
        k = drawn = 0
        turned: list[dict] = []  # kept for the log
        for cut in checkpoints(self.horizon)[:-1]:
            k1 = int(np.searchsorted(times, cut, side="left"))
            if k1 > drawn:  # attributes for the arrivals of the next few segments
                drawn = int(np.searchsorted(times, cut + DRAW_DAYS, side="left"))
                self._times = self._draw(k, drawn)
            run_until(self.env, cut, self._times[k - self._block : k1 - self._block],
                      self.arrive, k)  # fmt: skip
            k = k1
            (v, v_seq), (w, w_seq) = visits.now(), waits.now()
            t = self._turned(turned if measure.keep else None)
            keep_v, keep_w = tally.fold(v, w, cut, v_seq, t)
            visits.forget(v, v_seq, keep_v)
            waits.forget(w, w_seq, keep_w)
        if n > drawn:
            self._times = self._draw(k, n)
        run_until(self.env, self.horizon, self._times[k - self._block :], self.arrive, k)
        self._stop()
        (v, v_seq), (w, w_seq) = visits.now(), waits.now()
        w_seq = w_seq[~(w["start"] > self.horizon)]  # as close() drops them
        ev = close(v, w, self.plan, self.n_initial)
        tally.fold(ev.visits, ev.waits, self.horizon, v_seq,
                   self._turned(turned if measure.keep else None))  # fmt: skip
        if measure.keep:
            ev.visits = visits.everything(ev.visits, v_seq)
            ev.waits = waits.everything(ev.waits, w_seq)
            ev.turned = {f: np.concatenate([t[f] for t in turned]) for f in TURNED_FIELDS}
        ev.tally = tally
        self.most_held = visits.most + waits.most
        return ev

    def _turned(self, kept: list | None) -> dict[str, np.ndarray]:
        """The turn-aways since the last checkpoint, as columns (added to ``kept`` if given);
        forgotten here, as they are finished when made."""
        out = rows_to_columns(self.turned, TURNED_FIELDS)
        self.turned.clear()
        if kept is not None:
            kept.append(out)
        return out

    def _stop(self) -> None:
        """Drop the events still to come and the queues for places: the processes waiting on them
        hold the model, which holds them, and without this the whole run would stay in memory
        until Python's cycle collector next ran."""
        self.env._queue.clear()
        for pool in self.pools:
            pool.waiters.clear()


def simulate(
    system: System,
    seed: int,
    replication: int,
    horizon_days: float,
    capacity_steps: dict[str, list[tuple[float, int]]] | None = None,
    measure: Measure | None = None,
) -> Events:
    """Run one replication and return its events (tallied as it runs, with ``measure``).

    Python's cyclic garbage collector is paused for the replication: a run allocates hundreds of
    thousands of small records that the collector would otherwise rescan again and again (a
    third of the run time), and a run makes no cyclic garbage while it runs (finished processes
    are freed at once); the collector is back on when the run returns.
    """
    paused = gc.isenabled()
    gc.disable()
    try:
        p = plan(system, Streams(seed, replication), horizon_days, capacity_steps)
        return Model(p).run(measure)
    finally:
        if paused:
            gc.enable()
