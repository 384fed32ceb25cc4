"""The serving process's long-lived heap, moved out of the garbage collector's full passes.

By the time the service is ready, the process holds about 180,000 objects it keeps until it exits: the
modules, the SDK, pydantic's validators, the tool list, the SQLAlchemy metadata. CPython's full collection
(generation 2) walks every tracked object, and calls in flight keep promoting short-lived objects until one
is due. Under 50 agents that was a 130 to 190 ms pause of the event loop every ~2 s — 1.15 s of the server's
14 s of CPU in a 17 s ``agent_throughput`` run — spent mostly re-walking objects that never die.

``gc.freeze()`` moves every object tracked now into a permanent generation that collections skip; objects
made later are collected as before, and frozen ones are still freed when their last reference goes. After
one full collection at the end of start-up (so nothing that is already garbage is frozen), the same runs
took 12 to 60 ms per full pass. A warm restart replaces the engine, the pool and the monitors, whose old
objects may be frozen and cyclic: it unfreezes, collects and freezes again, so nothing is kept for good.

The first generation's threshold is raised from CPython's 700 new objects to 7,000 at the same moment. With
50 calls in flight a young collection every 700 allocations kept finding those calls' live objects, walking
them and promoting them (935 to 985 young collections and 1.1 to 1.5 s of collector time per 1,000-task
run, and the promoted objects brought the full passes back); at 7,000 most of a call's objects are freed by
their reference count before a collection comes: 42 to 44 young collections, 0.54 to 0.57 s, no full pass
(alternating ``agent_throughput`` runs; bench/README, "Sixteenth session").

Only a process that serves asks for this (``task-orchestrator serve`` marks its app with :func:`request`);
an app started inside another program (the tests run hundreds) leaves that program's collector alone.
"""

from __future__ import annotations

import gc
import logging
import time

from starlette.applications import Starlette

log = logging.getLogger("app.runtime")
_REQUESTED = "settle_heap"  # the app.state attribute the serving entry point sets
YOUNG_THRESHOLD = 7000  # new container objects between two collections of the youngest generation (CPython: 700)


def request(app: Starlette) -> None:
    """Ask ``app``'s lifespan to settle the heap when it is ready (the serving entry point calls this)."""
    setattr(app.state, _REQUESTED, True)


def requested(app: Starlette) -> bool:
    """Whether the serving entry point asked (:func:`request`); the lifespan reads it at ready."""
    return bool(getattr(app.state, _REQUESTED, False))


def settle() -> int:
    """Collect everything that is garbage now, freeze what is left and raise the youngest generation's
    threshold; returns how many objects are frozen.

    Anything frozen earlier is unfrozen first, so objects a warm restart left behind are collected too.
    """
    started = time.perf_counter()
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)
    frozen = gc.get_freeze_count()
    log.info(
        "heap_settled",
        extra={
            "event": "heap_settled",
            "frozen_objects": frozen,
            "young_threshold": YOUNG_THRESHOLD,
            "duration_ms": round((time.perf_counter() - started) * 1000, 1),
        },
    )
    return frozen


def resettle() -> None:
    """After a warm restart: settle again, if this process settled at start-up (otherwise leave it alone)."""
    if gc.get_freeze_count():
        settle()
