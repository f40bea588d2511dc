"""The execution plan: analysis, layout and steps put together, and run."""

from __future__ import annotations

import numpy as np

from recaffe import backend
from recaffe.plan import kernels, sequence
from recaffe.plan.batching import find_groups, runs_fit, schedule
from recaffe.plan.graph import BlobGraph, dependencies
from recaffe.plan.layout import Layout
from recaffe.plan.sharing import Sharing, plan_sharing
from recaffe.plan.steps import Steps
from recaffe.plan.watch import ShapeChanged


class ExecutionPlan:
    """The compiled form of a :class:`recaffe.net.Net` (see :mod:`recaffe.plan`)."""

    #: One weight-gradient GEMM for InnerProducts on the recurrent path.
    defer_weight_grads = False
    #: With ``share``: run recognised LSTM recurrences as one step
    #: (:mod:`.sequence`; results equal up to float32 rounding, not bits).
    fuse_sequences = True

    def __init__(self, net, time_batching: bool = True, share: bool = False,
                 keep=frozenset()):
        self.net = net
        self.xp = backend.xp()
        net.reshape()  # shapes of the current inputs, before grouping by shape
        self.graph = graph = BlobGraph(net)
        self.producer, self.writers, self.readers = (
            graph.producer, graph.writers, graph.readers)
        deps = dependencies(net)
        # LSTM recurrences run as one step (:mod:`.sequence`): only where
        # intermediate values may be dropped (``share``). Their layers join
        # no time-batched group.
        found = sequence.find_sequences(net, graph, keep=set(keep)) if (
            share and self.fuse_sequences and sequence.usable(self.xp)) else []
        self.groups, self.chains = [], []
        if time_batching:
            self.groups, self.chains = find_groups(
                net, graph, deps, {m for seq in found for m in seq.members})
        self.layout = Layout(net, graph, self.groups, self.xp, self.chains)
        self.aliased_sums = self.layout.aliased_sums
        self.data_rows, self.diff_rows = self.layout.data_rows, self.layout.diff_rows
        self.sequences = self._fitting_sequences(deps, found)
        self.order = schedule(deps, self.groups, [s.members for s in self.sequences])
        #: Blobs sharing arrays (:mod:`.sharing`; none unless ``share``; never
        #: the blob ids in ``keep``).
        if share:
            outside = set(keep).union(*(s.external_ids() for s in self.sequences))
            dead = set().union(*(s.internal for s in self.sequences))
            self.sharing = plan_sharing(net, graph, self.order, self.groups,
                                        self.chains, self.xp, outside, dead)
            if dead:
                self.layout.forget(dead)
        else:
            self.sharing = Sharing()
        # Re-share aliases (Split/Reshape/Flatten tops) onto the new memory.
        net.reshape()
        self.sync()
        self._build_steps()

    def _fitting_sequences(self, deps, found) -> list:
        """The recurrences in ``found`` whose Concat rows the layout made and
        whose layers can run one after another, with their engines made."""
        kept = []
        for seq in found:
            if seq.rows_ok() and runs_fit(deps, self.groups,
                                          [s.members for s in kept + [seq]]):
                kept.append(seq)
        for seq in kept:
            seq.build()
        return kept

    def _build_steps(self) -> None:
        #: Work arrays and state the step kernels share: one array per shape
        #: and purpose, the passes run so far ("pass"), the InnerProducts
        #: that multiply through oneDNN ("packed_ip") and their products.
        self.scratch: dict = {"pass": 0, "packed_ip": kernels.packed_sets(
            self.net, self.groups) if self.xp is np else {}}
        chain_bwd: dict[int, object] = {}
        self.row_chains: list[list[int]] = []
        fused = {m for seq in self.sequences for m in seq.members}
        for members in self.chains:
            if fused.issuperset(members):
                continue  # (their products run inside a recognised recurrence)
            rows = self._chain_rows_backward(members)
            if rows is not None:
                chain_bwd.update(rows)
                self.row_chains.append(members)
            elif self.defer_weight_grads:
                chain_bwd.update(kernels.chain_backward(
                    self.net, members, self.order_index, self.xp))
        steps = Steps(self.net, self.graph, self.order, self.groups, self.layout,
                      self.xp, chain_bwd, self, self.scratch, self.sequences)
        self.fwd, self.bwd, self.bwd_steps = steps.fwd, steps.bwd, steps.bwd_steps
        self.fwd_single, self.bwd_single = steps.fwd_single, steps.bwd_single
        self.watch = steps.watch
        self.loss = 0.0

    def _chain_rows_backward(self, members: list[int]):
        return kernels.chain_rows_backward(
            self.net, self.graph, members, self.order_index, self.data_rows,
            self.diff_rows, self.xp, self.scratch)

    def sync(self) -> None:
        """Point every group's layer state at the stacked blobs again."""
        for g in self.groups:
            g.rep.reshape(g.pb, g.pt)

    def order_index(self, layer_id: int) -> int:
        if not hasattr(self, "_pos"):
            self._pos = {}
            for k, u in enumerate(self.order):
                for m in (self.groups[-u - 1].members if u < 0 else [u]):
                    self._pos[m] = k
        return self._pos[layer_id]

    # -- running ---------------------------------------------------------------------
    def forward(self) -> tuple[float, int]:
        """Run all steps; returns (loss, -1), or (loss so far, step index) when a
        layer's top shapes changed at that step (the caller finishes the pass)."""
        self.loss = 0.0
        self.scratch["pass"] += 1
        k = 0
        try:
            for k, (f, b, t) in enumerate(self.fwd):  # noqa: B007
                f(b, t)
        except ShapeChanged:
            return self.loss, k
        return self.loss, -1

    def backward(self) -> None:
        self.scratch["pass"] += 1
        hooks = self.net.backward_hooks
        if hooks is None:
            for f, t, pd, b in self.bwd:
                f(t, pd, b)
            return
        # One entry per backward step: None, or a callable run after the step.
        table = hooks.plan_table(self)
        for (f, t, pd, b), h in zip(self.bwd, table, strict=True):
            f(t, pd, b)
            if h is not None:
                h()

    def executed_layers(self, upto: int) -> set[int]:
        """Layer indices run by steps 0..upto (inclusive)."""
        done: set[int] = set()
        for u in self.order[: upto + 1]:
            if u < 0:
                done.update(self.groups[-u - 1].members)
            else:
                done.add(u)
        return done

    def shapes_valid(self) -> bool:
        """Cheap check that the watched (reshaped-every-time) tops kept shape."""
        return self.watch.valid()

    def timed_pass(self, sync=lambda: None) -> tuple[list[float], list[float]]:
        """One forward and one backward, timed per step: (forward seconds per
        step, backward seconds per step; 0 where a step has no backward)."""
        from time import perf_counter  # noqa: PLC0415

        fwd_t = [0.0] * len(self.fwd)
        bwd_t = [0.0] * len(self.fwd)
        self.loss = 0.0
        self.scratch["pass"] += 1
        for k, (f, b, t) in enumerate(self.fwd_single):
            t0 = perf_counter()
            f(b, t)
            sync()
            fwd_t[k] = perf_counter() - t0
        self.scratch["pass"] += 1
        for (f, t, pd, b), k in zip(self.bwd_single, self.bwd_steps, strict=True):
            t0 = perf_counter()
            f(t, pd, b)
            sync()
            bwd_t[k] = perf_counter() - t0
        return fwd_t, bwd_t

    def describe(self) -> str:
        """One line per step (for logs and tests)."""
        net = self.net
        lines = []
        fused = {m: seq for seq in self.sequences for m in seq.members}
        shown: set = set()
        for u in self.order:
            if u in fused:
                seq = fused[u]
                if seq not in shown:  # one line, at its first member
                    shown.add(seq)
                    lines.append(f"LSTM sequence x{seq.T}: {seq.name}")
                continue
            if u < 0:
                g = self.groups[-u - 1]
                names = [net.layer_names[m] for m in g.members]
                lines.append(f"batched {net.layers_list[g.members[0]].type} x"
                             f"{len(names)}: {names[0]} .. {names[-1]}")
            else:
                lines.append(f"{net.layers_list[u].type} {net.layer_names[u]}")
        return "\n".join(lines)
