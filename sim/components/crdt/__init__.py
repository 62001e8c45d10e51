"""CRDTs for course question 4 (« CRDT & Collaboration »).

* :mod:`.teaching` — G-Counter, PN-Counter, LWW-Register and OR-Set written out, state-based,
  each with the ``merge`` a student can read;
* :mod:`.documents` — one shared document (text, settings map, comments list) replicated three
  ways: pycrdt (Yjs) updates, naive positional operations, last-writer-wins on the whole;
* :mod:`.replica` — a replica on the simulated network: broadcast of local edits and
  anti-entropy (state-vector exchange) that repairs lost messages;
* :mod:`.workload` — K users typing, deleting and changing settings at given rates;
* :mod:`.replay` — one set of concurrent edits applied in many orders;
* :mod:`.yjs_format` — just enough of the Yjs encoding to tell which typed characters survive.
"""

from sim.components.crdt.documents import DELIVERY, LWWDocument, NaiveDocument, NaiveOp, YDocument, YUpdate
from sim.components.crdt.replay import Session, concurrent_session, replay_naive, replay_y
from sim.components.crdt.replica import EditLedger, Replica
from sim.components.crdt.teaching import GCounter, LWWRegister, ORSet, PNCounter
from sim.components.crdt.workload import EditingWorkload

__all__ = [
    "DELIVERY", "EditLedger", "EditingWorkload", "GCounter", "LWWDocument", "LWWRegister", "NaiveDocument",
    "NaiveOp", "ORSet", "PNCounter", "Replica", "Session", "YDocument", "YUpdate", "concurrent_session",
    "replay_naive", "replay_y",
]
