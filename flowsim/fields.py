"""The record layout both engines write: the position of each field in a stay, a wait and a
turn-away (a row is a Python list in ``model.py``, a column of a buffer in ``eventloop.py``), and
the codes the compiled loop is fed for how a patient enters. Numba reads these module-level
integers as compile-time constants, so ``visits[V_LEAVE, j]`` costs nothing.

Codes of places and outcomes (``HOME``, ``DEATH``, ``OPEN``, ...) are in ``patients.py``;
``WAIT`` (a service's ``when_full`` rule) is in ``plan.py``.
"""

from __future__ import annotations

VISIT_FIELDS = (
    "episode",
    "person",
    "service",
    "enter",
    "ready",
    "leave",
    "outcome",
    "pathway",
    "group",
)
"""A stay: its episode and person, the service, when it began, when the patient was ready to
leave and left, the outcome (the next service, or ``HOME``, ``DEATH``, ``READMIT``, ``OPEN``, ...),
the pathway and the group."""
V_EPISODE = VISIT_FIELDS.index("episode")
V_PERSON = VISIT_FIELDS.index("person")
V_SERVICE = VISIT_FIELDS.index("service")
V_ENTER = VISIT_FIELDS.index("enter")
V_READY = VISIT_FIELDS.index("ready")
V_LEAVE = VISIT_FIELDS.index("leave")
V_OUTCOME = VISIT_FIELDS.index("outcome")
V_PATHWAY = VISIT_FIELDS.index("pathway")
V_GROUP = VISIT_FIELDS.index("group")

WAIT_FIELDS = ("episode", "person", "place", "waits_for", "reason", "responsible", "start", "end")
"""A wait: where the person waits (a service, ``FRONT_DOOR`` or ``COMMUNITY``), for what (a
service or ``PROCESS``), its kind (``reason``: an index of ``patients.Layout.waits``, which gives
its codes in each reason scheme) and responsible body, when it began and ended."""
W_EPISODE = WAIT_FIELDS.index("episode")
W_PERSON = WAIT_FIELDS.index("person")
W_PLACE = WAIT_FIELDS.index("place")
W_WAITS_FOR = WAIT_FIELDS.index("waits_for")
W_REASON = WAIT_FIELDS.index("reason")
W_RESPONSIBLE = WAIT_FIELDS.index("responsible")
W_START = WAIT_FIELDS.index("start")
W_END = WAIT_FIELDS.index("end")
NO_CODE = -1
"""The reason and responsible body of a wait at the front door (none are coded)."""

TURNED_FIELDS = ("episode", "person", "place", "service", "to", "time")
"""A person turned away by a full service (``config.Service.when_full``): where they were (a
service, or ``COMMUNITY``), the service that was full, where its rule sent them (another
service, ``HOME`` or ``LOST``) and when. Finished as soon as it is made."""
T_EPISODE = TURNED_FIELDS.index("episode")
T_PERSON = TURNED_FIELDS.index("person")
T_PLACE = TURNED_FIELDS.index("place")
T_SERVICE = TURNED_FIELDS.index("service")
T_TO = TURNED_FIELDS.index("to")
T_TIME = TURNED_FIELDS.index("time")

TIMES = ("enter", "ready", "leave", "start", "end", "time")
"""Fields that are times (float64); every other field is a code (int64)."""

ACUTE = 0
"""The (first) acute service's code (``patients.Layout`` lists the acute services first)."""

# how a patient enters the compiled loop (``arrays.entries``)
ARRIVE_FRONT_DOOR, ARRIVE_READY = -1, -2
"""Kinds of arrival: through the front door, or ready to leave an acute bed; a kind >= 0 is a
community referral to that service."""
START_QUEUED, START_IN_TREATMENT, START_IN_PLACE = 0, 1, 2
"""Kinds of people there at day 0: in an acute bed waiting for a place, in acute treatment, or
in a place downstream."""
