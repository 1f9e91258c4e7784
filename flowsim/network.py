"""The rules of a system that span its fields: every service has a role (one acute service per
trust, one assessment team shared or per trust), every name used exists, probabilities sum to 1,
routing and overflow have no cycle, and the people a system starts with fit in its places.

Each rule raises ``ValueError`` naming the field it concerns (``services.X.next: ...``);
``config.System`` runs them once its fields are checked, and ``config.validate`` reports them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flowsim.config import System


ROLES = ("acute", "assessment", "reablement", "step_down", "home_care", "care_home", "other")
"""What a service can be to the model and its KPIs (``config.Service.role``)."""
EXITS = ("home", "death")
"""Places a patient can leave the modelled system to."""
WHEN_FULL = ("wait", "lost", "home")
"""``Service.when_full`` rules other than naming a service to overflow to."""
PROBABILITY_TOLERANCE = 1e-6


def _close_to_one(total: float) -> bool:
    return abs(total - 1.0) <= PROBABILITY_TOLERANCE


def assign_roles(system: System) -> None:
    """Give each service without a ``role`` the one its name is (only a service named after a
    role may leave it out), then check there is one acute service and at most one assessment."""
    for name, svc in system.services.items():
        if svc.role is None:
            if name not in ROLES or name == "other":
                raise ValueError(
                    f"services.{name}.role: give the service's role (one of "
                    f"{', '.join(ROLES)}); only a service named after a role may leave it out"
                )
            svc.role = name
    acute = system.by_role("acute")
    if not acute:
        raise ValueError(
            "services: an acute service is required (a service with role: acute, or named 'acute')"
        )
    if len(acute) > 1 and not system.organisations:
        raise ValueError(
            f"services.{acute[1]}.role: only one service may be acute ({acute[0]} already is), "
            f"unless each is run by its own trust (organisations with kind: trust)"
        )
    assessment = system.by_role("assessment")
    if len(assessment) > 1 and len(acute) == 1:
        raise ValueError(
            f"services.{assessment[1]}.role: only one service may be assessment "
            f"({assessment[0]} already is)"
        )


def check_organisations(system: System) -> None:
    """Every organisation named by a service exists; a council's groups exist and no group lives
    in two councils; with councils, every group lives in one; the acute service is a trust's.
    Several acute services are several trusts: each is run by its own trust, and assessment is
    one shared team or one per trust; every admission says which trust's door it comes to."""
    orgs = system.organisations
    for name, svc in system.services.items():
        if svc.organisation is not None and svc.organisation not in orgs:
            raise ValueError(
                f"services.{name}.organisation: unknown organisation {svc.organisation!r}"
                f" (known: {', '.join(orgs) or 'none; list them under organisations'})"
            )
    seen: dict[str, str] = {}
    for name, org in orgs.items():
        if org.kind == "trust" and org.groups:
            raise ValueError(f"organisations.{name}.groups: a trust has no residents; councils do")
        for g in org.groups:
            if g not in system.groups:
                raise ValueError(f"organisations.{name}.groups: unknown group {g!r}")
            if g in seen:
                raise ValueError(
                    f"organisations.{name}.groups: group {g!r} already lives in {seen[g]!r}"
                )
            seen[g] = name
    councils = [n for n, o in orgs.items() if o.kind == "council"]
    if councils and set(seen) != set(system.groups):
        missing = sorted(set(system.groups) - set(seen))[0]
        raise ValueError(f"organisations: group {missing!r} lives in no council")
    acutes = system.acutes
    for acute in acutes:
        acute_org = system.services[acute].organisation
        if (orgs or len(acutes) > 1) and (acute_org is None or orgs[acute_org].kind != "trust"):
            raise ValueError(f"services.{acute}.organisation: an acute service is a trust's")
    if len(acutes) > 1:
        _check_trusts(system)


def _check_trusts(system: System) -> None:
    """A system of several acute trusts: one acute service per trust, an assessment team shared
    or one per trust, each admission naming its trust, no start queue (whose beds would it be
    in?)."""
    services, acutes = system.services, system.acutes
    run_by: dict[str, str] = {}
    for acute in acutes:
        org = services[acute].organisation
        if org in run_by:
            raise ValueError(
                f"services.{acute}.organisation: {org!r} already runs acute service "
                f"{run_by[org]!r} (one acute service per trust)"
            )
        run_by[org] = acute
    teams = system.by_role("assessment")
    if len(teams) > 1:
        for team in teams:
            org = services[team].organisation
            if org not in run_by:
                raise ValueError(
                    f"services.{team}.organisation: with one assessment team per trust, each "
                    f"is run by a trust with an acute service ({', '.join(run_by)})"
                )
        for org, acute in run_by.items():
            mine = [t for t in teams if services[t].organisation == org]
            if len(mine) != 1:
                raise ValueError(
                    f"services.{acute}: trust {org!r} runs {len(mine)} assessment teams; with "
                    f"one per trust, each trust runs exactly one"
                )
    for name, arrival in system.arrivals.items():
        if arrival.to in ("front_door", "ready_to_leave") and arrival.acute is None:
            raise ValueError(
                f"arrivals.{name}.acute: the system has several acute trusts; say whose "
                f"({', '.join(acutes)})"
            )
    for name, svc in services.items():
        if svc.start_queue:
            raise ValueError(
                f"services.{name}.start_queue: a start queue needs a system with one acute "
                f"service (whose beds would they wait in?)"
            )


def check_network(system: System) -> None:
    """Rules that span fields: roles, names exist, probabilities sum to 1, routing has no cycle."""
    groups = set(system.groups)
    if len(groups) != len(system.groups):
        raise ValueError("groups: names must be unique")
    assign_roles(system)
    check_organisations(system)
    services = system.services
    acute, assessment = system.acute, system.assessment
    downstream = system.downstream()
    heads = system.by_role("acute", "assessment")
    stay_needed = heads + downstream
    for name in stay_needed:
        svc = services[name]
        unknown = set(svc.stay_by_group) - groups
        if unknown:
            raise ValueError(f"services.{name}.stay_by_group: unknown group {sorted(unknown)[0]!r}")
        if svc.stay is None and set(svc.stay_by_group) != groups:
            raise ValueError(f"services.{name}: give 'stay', or 'stay_by_group' for every group")
    for name in downstream:
        svc = services[name]
        if svc.wait is None:
            raise ValueError(
                f"services.{name}.wait: give the DTOC reason and responsible organisation"
            )
        tables = {
            "next": svc.next,
            **{f"next_by_group.{g}": t for g, t in svc.next_by_group.items()},
        }
        if set(svc.next_by_group) - groups:
            raise ValueError(
                f"services.{name}.next_by_group: unknown group "
                f"{sorted(set(svc.next_by_group) - groups)[0]!r}"
            )
        if not svc.next:
            raise ValueError(f"services.{name}.next: routing after the stay is required")
        for label, table in tables.items():
            for target in table:
                if target not in EXITS and target not in downstream:
                    raise ValueError(
                        f"services.{name}.{label}: unknown target {target!r} (use a downstream "
                        f"service, 'home' or 'death'; readmissions are set per pathway)"
                    )
                if target == name:
                    raise ValueError(f"services.{name}.{label}: a service cannot route to itself")
            if not _close_to_one(sum(table.values())):
                raise ValueError(
                    f"services.{name}.{label}: probabilities must sum to 1 "
                    f"(they sum to {sum(table.values()):.6g})"
                )
    for name in heads:
        if name and (services[name].next or services[name].next_by_group):
            raise ValueError(
                f"services.{name}.next: {services[name].role} routing is set by discharge.pathways"
            )
    _check_acyclic(system)
    _check_when_full(system)
    d = system.discharge
    for p, pathway in d.pathways.items():
        for label, target in {
            "to": pathway.to,
            **{f"to_by_group.{g}": t for g, t in pathway.to_by_group.items()},
        }.items():
            if target != "home" and target not in downstream:
                raise ValueError(f"discharge.pathways.{p}.{label}: unknown service {target!r}")
        if set(pathway.to_by_group) - groups:
            raise ValueError(
                f"discharge.pathways.{p}.to_by_group: unknown group "
                f"{sorted(set(pathway.to_by_group) - groups)[0]!r}"
            )
        if (pathway.assessment or pathway.discharge_to_assess) and assessment is None:
            raise ValueError(
                f"discharge.pathways.{p}.assessment: needs an assessment service (a service with "
                f"role: assessment)"
            )
        if pathway.discharge_to_assess and not pathway.assessment:
            raise ValueError(f"discharge.pathways.{p}.discharge_to_assess: needs assessment: true")
        if pathway.discharge_to_assess and pathway.to == "home":
            raise ValueError(
                f"discharge.pathways.{p}.discharge_to_assess: needs a service to "
                f"assess in, not 'home'"
            )
    if d.readmission_delay.max is None or d.readmission_delay.max > 30:
        raise ValueError("discharge.readmission_delay.max: must be set and at most 30 days")
    for g in system.groups:
        shares = d.pathway_shares_by_group.get(g)
        if shares is None:
            raise ValueError(f"discharge.pathway_shares_by_group: missing group {g!r}")
        for p in shares:
            if p not in d.pathways:
                raise ValueError(
                    f"discharge.pathway_shares_by_group.{g}: pathway {p} is not "
                    f"defined in discharge.pathways"
                )
        if not _close_to_one(sum(shares.values())):
            raise ValueError(
                f"discharge.pathway_shares_by_group.{g}: probabilities must sum to 1 "
                f"(they sum to {sum(shares.values()):.6g})"
            )
    for label, table in (
        ("pathway_shares_by_group", d.pathway_shares_by_group),
        ("death_in_hospital_probability_by_group", d.death_in_hospital_probability_by_group),
    ):
        if set(table) - groups:
            raise ValueError(f"discharge.{label}: unknown group {sorted(set(table) - groups)[0]!r}")
    if system.deconditioning.enabled:
        for p in ("P1", "P2", "P3"):
            if p not in d.pathways:
                raise ValueError(
                    f"deconditioning: escalation P1 -> P2 -> P3 needs pathway {p} "
                    f"defined (or set deconditioning.enabled: false)"
                )
    for name, arrival in system.arrivals.items():
        if arrival.to not in ("front_door", "ready_to_leave") and arrival.to not in downstream:
            raise ValueError(
                f"arrivals.{name}.to: unknown target {arrival.to!r} (use front_door, "
                f"ready_to_leave or a downstream service)"
            )
        if arrival.acute is not None:
            if arrival.to not in ("front_door", "ready_to_leave"):
                raise ValueError(
                    f"arrivals.{name}.acute: only an admission (to: front_door) or a "
                    f"ready_to_leave arrival goes to an acute trust"
                )
            if arrival.acute not in system.acutes:
                raise ValueError(
                    f"arrivals.{name}.acute: {arrival.acute!r} is not an acute service "
                    f"({', '.join(system.acutes)})"
                )
        if arrival.pathway is not None and arrival.pathway not in d.pathways:
            raise ValueError(f"arrivals.{name}.pathway: {arrival.pathway} is not defined")
        if set(arrival.group_shares) - groups:
            raise ValueError(
                f"arrivals.{name}.group_shares: unknown group "
                f"{sorted(set(arrival.group_shares) - groups)[0]!r}"
            )
        if arrival.pathway_shares is not None:
            if set(arrival.pathway_shares) - set(d.pathways):
                raise ValueError(
                    f"arrivals.{name}.pathway_shares: pathway "
                    f"{sorted(set(arrival.pathway_shares) - set(d.pathways))[0]} is "
                    f"not defined in discharge.pathways"
                )
            if not _close_to_one(sum(arrival.pathway_shares.values())):
                raise ValueError(
                    f"arrivals.{name}.pathway_shares: probabilities must sum to 1 "
                    f"(they sum to {sum(arrival.pathway_shares.values()):.6g})"
                )
        if not _close_to_one(sum(arrival.group_shares.values())):
            raise ValueError(
                f"arrivals.{name}.group_shares: probabilities must sum to 1 "
                f"(they sum to {sum(arrival.group_shares.values()):.6g})"
            )
    for name, svc in services.items():
        if svc.start_queue and svc.role in ("acute", "assessment"):
            raise ValueError(
                f"services.{name}.start_queue: a start queue is for services patients "
                f"wait to be discharged to"
            )
        top = max(c for _, c in svc.capacity_steps())
        if svc.start_occupancy > svc.capacity_steps()[0][1]:
            raise ValueError(
                f"services.{name}.start_occupancy: {svc.start_occupancy} is above the "
                f"day-0 capacity {svc.capacity_steps()[0][1]}"
            )
        if top == 0:
            raise ValueError(f"services.{name}.capacity: the schedule never has a place")
        if svc.start_queue and not any(
            name in (pw.to, *pw.to_by_group.values()) for pw in d.pathways.values()
        ):
            raise ValueError(
                f"services.{name}.start_queue: no discharge pathway leads there, so "
                f"no one can be waiting in hospital for it"
            )
    queued = sum(s.start_queue for s in services.values())
    acute0 = services[acute].capacity_steps()[0][1]
    treated = services[acute].start_occupancy
    if treated + queued > acute0:  # the people waiting in hospital at day 0 are what overflows
        longest = max(services, key=lambda name: services[name].start_queue)
        raise ValueError(
            f"services.{longest}.start_queue: {queued} people queued in acute beds for discharge "
            f"(start_queue, all services) plus {treated} in treatment "
            f"(services.{acute}.start_occupancy) exceed the day-0 acute capacity {acute0}"
        )


def _check_acyclic(system: System) -> None:
    """Downstream routing must be acyclic: each service is visited at most once per episode."""
    services = system.services
    graph = {}
    for name in system.downstream():
        svc = services[name]
        targets = set(svc.next) | {t for table in svc.next_by_group.values() for t in table}
        graph[name] = {t for t in targets if t in services}
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in graph.get(node, ()):
            if state.get(nxt) == 1:
                cycle = " -> ".join([*path[path.index(nxt) :], nxt]) if nxt in path else nxt
                raise ValueError(
                    f"services: routing has a cycle ({cycle}); each service may be "
                    f"visited once between acute discharges"
                )
            if nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for node in graph:
        if node not in state:
            visit(node, [node])


def _check_when_full(system: System) -> None:
    """``when_full`` rules: downstream services only, known targets, no chain back to itself."""
    services, downstream = system.services, system.downstream()
    for name, svc in services.items():
        rule = svc.when_full
        field = f"services.{name}.when_full"
        if rule == "wait":
            continue
        if name not in downstream:
            raise ValueError(
                f"{field}: only a service after acute care may turn people away ({name} always "
                f"makes them wait)"
            )
        if rule not in WHEN_FULL and rule not in services:
            raise ValueError(
                f"{field}: unknown rule {rule!r} (use wait, lost, home or a downstream service)"
            )
        if rule == name:
            raise ValueError(f"{field}: a service cannot overflow to itself")
        if rule in services and rule not in downstream:
            raise ValueError(
                f"{field}: cannot overflow to {rule!r} (use a service after acute care)"
            )
        if svc.start_queue:
            raise ValueError(
                f"{field}: a service that turns people away has no line, so no start_queue"
            )
        chain, at = [name], rule
        while at in services:
            if at in chain:
                cycle = " -> ".join([*chain[chain.index(at) :], at])
                raise ValueError(
                    f"{field}: overflow targets form a cycle ({cycle}); the last one must be "
                    f"wait, lost or home"
                )
            chain.append(at)
            at = services[at].when_full
