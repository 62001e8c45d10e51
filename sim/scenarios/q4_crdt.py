"""``crdt-convergence``: users edit one shared document on several replicas; do the replicas agree?

Course question 4 (« CRDT & Collaboration ») says a CRDT lets nodes modify a shared state
concurrently, without coordination, and still converge, because its updates are commutative
and idempotent. Here ``users`` users type into a shared text, delete, change the settings of a
shared dashboard (a map: concurrent writes to the same key) and add comments (a list), on
``replicas`` replicas linked by a network that delays, reorders, duplicates and loses messages
and is cut in two for ``partition_length`` seconds. The same workload, seed and network run
under three models:

* ``pycrdt`` — a Yjs document per replica, incremental updates, anti-entropy by state vectors;
* ``naive`` — positional operations ``insert(pos, char)`` / ``delete(pos)`` applied in arrival
  order (with the same anti-entropy, so nothing is lost in transit): it diverges;
* ``lww`` — the whole document is one last-writer-wins register: it converges by throwing
  away concurrent edits.

Summary, one row per model: ``converged`` (all replicas identical when the run ends, ``settle``
seconds after the last edit and the heal), ``outcome`` (``converged``; ``not yet converged`` when
some replica still lacks an update another holds, so more time would tell; ``diverged`` when every
replica holds every update and they still differ), ``replicas_missing_updates``, ``divergent_replicas``, ``lost_characters`` (typed,
never deleted by a user, missing from the final text; the worst replica), ``time_to_converge_s``
(from the heal to the first instant all replicas hold identical content), and bytes sent.
Series ``distinct_states``: the number of different replica contents over time.

Conservation laws (asserted by the tests): the network's ``sent = delivered + dropped + in
flight``; per replica, ``final characters = typed - deleted - lost + resurrected``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from sim.components.crdt import DELIVERY, EditingWorkload, EditLedger, LWWDocument, NaiveDocument, Replica, YDocument
from sim.components.crdt.workload import LETTERS
from sim.core.params import WorkModel
from sim.core import (
    Context, Distribution, LinkSpec, Network, ParameterError, Params, Result, TruncatedNormal, expand_names, param,
)
from sim.core.registry import scenario
from sim.core.replication import replicate, replications_param

MODELS = ("pycrdt", "naive", "lww")


@dataclass(frozen=True)
class CrdtConvergenceParams(Params):
    """Parameters of ``crdt-convergence``."""
    work = WorkModel(seconds_at_defaults=0.4, factors=('operations', 'operations', 'replicas'))  # measured, see check_work

    model: str = param("all", help="pycrdt (Yjs CRDT), naive (positional operations), lww (last writer wins on "
                                   "the whole document); several separated by commas, or all (on the same workload "
                                   "and network)")
    replications: int = replications_param()
    replicas: int = param(3, ge=2, le=64, help="replicas of the document (the partition cuts off the first half)")
    users: int = param(6, ge=1, le=len(LETTERS), help="users editing; user u works on replica u mod replicas")
    operations: int = param(1500, ge=1, help="edits in all: insertions, deletions, settings writes, comments")
    typing_rate: float = param(2.0, gt=0, unit="1/s", help="edits per second of each user (Poisson)")
    delete_fraction: float = param(0.15, ge=0, le=1, help="share of edits that delete a character (backspace)")
    setting_fraction: float = param(0.03, ge=0, le=1, help="share of edits that write a dashboard setting (shared map)")
    comment_fraction: float = param(0.02, ge=0, le=1, help="share of edits that append a comment (shared list)")
    hotspot: float = param(0.2, ge=0, le=1,
                           help="share of insertions typed at the end of the document, where everyone types at once")
    settings_keys: int = param(3, ge=1, help="distinct settings keys (few keys: concurrent writes to the same key)")
    latency: Distribution = param(TruncatedNormal(0.05, 0.02), unit="s", help="one-way network latency")
    loss: float = param(0.02, ge=0, lt=1, help="probability that a message is lost")
    duplication: float = param(0.02, ge=0, le=1, help="probability that a message is delivered twice")
    reorder: float = param(0.02, ge=0, le=1, help="probability that a message is held back (later ones overtake it)")
    partition_start: float = param(20.0, ge=0, unit="s", help="when the network splits the replicas in two")
    partition_length: float = param(20.0, ge=0, unit="s", help="how long the split lasts (0: no partition)")
    anti_entropy_period: float | None = param(1.0, gt=0, unit="s", none_means="off",
                                              help="each replica asks a peer (round robin) for what it lacks this often")
    delivery: str = param("causal", choices=DELIVERY,
                          help="pycrdt: hold an update until what it depends on has arrived (causal), or hand "
                               "it to pycrdt at once (as-received)")
    settle: float = param(10.0, ge=0, unit="s",
                          help="simulated time after the last edit (and the heal) before final states are compared")
    sample_interval: float = param(1.0, gt=0, unit="s", help="period of the distinct_states time series")

    def validate(self) -> None:
        self.models()  # raises on an unknown name
        if self.delete_fraction + self.setting_fraction + self.comment_fraction > 1:
            raise ParameterError("delete_fraction", "plus setting_fraction plus comment_fraction must be <= 1, got "
                                 f"{self.delete_fraction + self.setting_fraction + self.comment_fraction:g}")

    def models(self) -> tuple[str, ...]:
        return expand_names("model", self.model, MODELS)

    @property
    def heal(self) -> float | None:
        """When the partition heals, in seconds (None: no partition)."""
        return self.partition_start + self.partition_length if self.partition_length > 0 else None


class _ConvergenceWatch:
    """Finds the first instant after the heal at which every replica holds the same content."""

    def __init__(self, ctx: Context) -> None:
        self.env = ctx.env
        self.replicas: list[Replica] = []
        self.armed = False
        self.converged_at = math.nan

    def arm(self, at: float):
        yield self.env.timeout(at - self.env.now)
        self.armed = True
        self.check()

    def changed(self, _replica: Replica) -> None:
        if self.armed:
            self.check()

    def check(self) -> None:
        first = self.replicas[0].content_key()
        if all(r.content_key() == first for r in self.replicas[1:]):
            self.converged_at = self.env.now
            self.armed = False  # the first time is what we measure: stop paying for checks


def _document(model: str, client_id: int, ctx: Context, delivery: str):
    if model == "pycrdt":
        return YDocument(client_id, delivery=delivery)
    if model == "naive":
        return NaiveDocument(client_id)
    return LWWDocument(client_id, clock=lambda: ctx.env.now)


def missing_updates(model: str, replicas: list[Replica]) -> int:
    """How many replicas lack an update that some other replica holds (at the end of the run).

    With none missing, different contents mean the model *diverged*; with some missing, the run
    ended before anti-entropy finished (*not yet converged*). pycrdt: each replica against the
    merge of every replica's full state; naive: the operations seen, per origin; lww: the version.
    """
    if model == "pycrdt":
        union = YDocument(0)
        for r in replicas:
            union.receive(r.document.doc.get_update())
        everything = union.key()
        return sum(r.content_key() != everything for r in replicas)
    if model == "naive":
        seen = [{(o, q) for o, ops in r.document.log.items() for q in ops} for r in replicas]
        union = set().union(*seen)
        return sum(len(s) != len(union) for s in seen)
    newest = max(r.document.version for r in replicas)
    return sum(r.document.version != newest for r in replicas)


def distinct_contents(replicas: list[Replica]) -> int:
    """How many different contents the replicas hold.

    Replicas of different sizes differ for sure; only those whose sizes tie are read in full
    (reading a pycrdt text costs its length: a sixth of a 10,000-edit run went on reading texts).
    """
    by_size: dict[tuple[int, int, int], list[Replica]] = {}
    for r in replicas:
        by_size.setdefault(r.content_sizes(), []).append(r)
    return sum(1 if len(same) == 1 else len({r.content_key() for r in same}) for same in by_size.values())


def outcome(converged: bool, missing: int) -> str:
    """``converged``, ``not yet converged`` (updates still missing somewhere) or ``diverged``."""
    return "converged" if converged else "not yet converged" if missing else "diverged"


def simulate(p: CrdtConvergenceParams, seed: int, model: str,
             replication: int = 0) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    """One replication of one model: summary row, distinct-states series, final documents."""
    # the same streams for every model: same users, keystrokes, client ids and network
    ctx = Context(seed, replication=replication)
    env = ctx.env
    net = Network(ctx, LinkSpec(latency=p.latency, loss=p.loss, duplication=p.duplication, reorder=p.reorder))
    names = [f"replica-{i}" for i in range(p.replicas)]
    # 32-bit client ids like Yjs's random ones (their size shows in the updates' bytes), drawn from the seed
    client_ids = (ctx.rng("crdt.client-ids").choice(2**32 - 1, size=p.replicas, replace=False) + 1).tolist()
    ledger = EditLedger()
    watch = _ConvergenceWatch(ctx)
    period = p.anti_entropy_period
    replicas = [
        Replica(ctx, name, _document(model, client_ids[i], ctx, p.delivery), net, names, anti_entropy_period=period,
                ledger=ledger, on_change=watch.changed,
                first_sync=None if period is None else period * (i + 1) / p.replicas)  # staggered rounds
        for i, name in enumerate(names)
    ]
    watch.replicas = replicas
    heal = p.heal
    if heal is not None:
        half = p.replicas // 2
        net.partition(names[:half], names[half:], start=p.partition_start, heal=heal)
        env.process(watch.arm(heal))
    workload = EditingWorkload(ctx, replicas, users=p.users, operations=p.operations, typing_rate=p.typing_rate,
                               delete_fraction=p.delete_fraction, setting_fraction=p.setting_fraction,
                               comment_fraction=p.comment_fraction, hotspot=p.hotspot, settings_keys=p.settings_keys)
    horizon = max(workload.end, heal or 0.0) + p.settle
    samples: list[tuple[float, int]] = []

    def sample(env):
        while True:
            samples.append((env.now, distinct_contents(replicas)))
            yield env.timeout(p.sample_interval)

    env.process(sample(env))
    ctx.run(until=horizon)

    keys = [r.content_key() for r in replicas]
    group_sizes: dict[tuple, int] = {}
    for key in keys:
        group_sizes[key] = group_sizes.get(key, 0) + 1
    largest = max(group_sizes.values())
    majority = max(group_sizes, key=lambda k: group_sizes[k])  # first of the largest groups, in replica order
    losses = [ledger.losses(r.document.visible_ids()) for r in replicas]
    settings = [r.document.settings() for r in replicas]
    all_keys = sorted(set().union(*settings))
    comments_written = set(ledger.comments)
    edit_bytes = int(sum(r.edit_bytes for r in replicas))
    sync_bytes = int(sum(r.sync_bytes for r in replicas))
    acct = net.accounting()
    missing = missing_updates(model, replicas)
    row = {
        "model": model,
        "replicas": p.replicas,
        "users": p.users,
        "operations": p.operations,
        "insertions": workload.counts["insert"],
        "deletions": workload.counts["delete"],
        "settings_writes": workload.counts["set"],
        "comments": workload.counts["append"],
        "converged": largest == p.replicas,
        "outcome": outcome(largest == p.replicas, missing),
        "replicas_missing_updates": missing,
        "divergent_replicas": p.replicas - largest,
        "distinct_final_states": len(group_sizes),
        "deleted_characters": len(ledger.deleted),
        "lost_characters": max(lost for lost, _ in losses),
        "resurrected_characters": max(res for _, res in losses),
        "divergent_settings": sum(len({s.get(k) for s in settings}) > 1 for k in all_keys),
        "lost_comments": max(len(comments_written - set(r.document.comments())) for r in replicas),
        "final_length": len(majority[0]),
        "time_to_converge_s": watch.converged_at - heal if heal is not None else math.nan,
        "update_bytes": acct["bytes_sent"],
        "edit_bytes": edit_bytes,
        "anti_entropy_bytes": sync_bytes,
        "bytes_per_edit": edit_bytes / (p.operations * (p.replicas - 1)),
        "messages_sent": acct["sent"],
        "messages_delivered": acct["delivered"],
        "messages_lost": acct["dropped_loss"],
        "messages_cut_by_partition": acct["dropped_partition"],
        "messages_in_flight": acct["in_flight"],
        "duplicates_delivered": acct["duplicates_delivered"],
        "held_back_updates": sum(len(r.document.pending) for r in replicas),
        "simulated_s": horizon,
    }
    series = pd.DataFrame(samples, columns=["time_s", "distinct_states"])
    series.insert(0, "model", model)
    documents = pd.DataFrame([{
        "model": model, "replica": r.name, "length": len(key[0]), "lost_characters": lost,
        "resurrected_characters": res, "comments": len(key[2]),
        "settings": "; ".join(f"{k}={v}" for k, v in key[1]), "text": key[0],
    } for r, key, (lost, res) in zip(replicas, keys, losses)])
    return row, series, documents


@scenario("crdt-convergence", CrdtConvergenceParams,
          "Q4: users co-edit a document on replicas over a lossy, partitioned network: pycrdt vs naive "
          "operations vs last-writer-wins")
def run_crdt_convergence(p: CrdtConvergenceParams, seed: int) -> Result:
    def once(r: int):
        runs = [simulate(p, seed, model, r) for model in p.models()]
        return [row for row, _, _ in runs], {"distinct_states": pd.concat([d for _, d, _ in runs], ignore_index=True),
                                             "documents": pd.concat([d for _, _, d in runs], ignore_index=True)}

    reps = replicate(p.replications, once)
    summary = reps.summary(["model"], keep=["replicas", "users", "operations"])
    return Result("crdt-convergence", seed, p, summary, {"replications": reps.rows, **reps.series})
