"""Automatic unrolling: write one time step with NetSpec, get the whole net.

A recurrent net in Caffe is an ordinary feed-forward net with one copy of the
step's layers per time step, every copy using the *same* parameter names so
that the weights are shared through time. :func:`unroll` builds that net from a
Python function that describes a single step::

    from recaffe import layers as L, params as P
    import recaffe

    def step(x_t, h):                      # x_t: (1, N, D), h: (1, N, H)
        z = L.InnerProduct(x_t, num_output=H, axis=2, name="zX",
                           weight_filler=dict(type="xavier"))
        zh = L.InnerProduct(h, num_output=H, axis=2, bias_term=False, name="zH")
        h = L.TanH(L.Eltwise(z, zh, name="z"), name="a")
        return h, h                        # (output of the step, new state)

    ns = recaffe.NetSpec()
    ns.x, ns.cont = L.Input(shape=[dict(dim=[T, N, D]), dict(dim=[T, N])], ntop=2)
    r = recaffe.unroll(step, ns.x, T, states=[(1, N, H)], state_names=["h"],
                       cont=ns.cont, ns=ns)
    print(ns.to_proto())                   # zX_t1, zH_t1, z_t1, a_t1, zX_t2, …

How it works: ``step`` is called **once**, on placeholder tops. The layers it
creates form a template graph, found by walking back from the returned tops.
The template is cloned once per time step with the placeholders replaced by
that step's input slice and the previous step's states. Layers of the template
that do not depend on any placeholder (a top captured from outside, or a layer
built inside ``step`` from such tops only) are *not* cloned: they are emitted
once and shared by all steps (so ``L.InnerProduct(static_input)`` inside the
step is computed once, as Caffe's ``x_static`` projection is).

Naming scheme (``P`` = ``name + "_"`` when ``name`` is given, else empty;
``t`` = the 1-based time index of the input slice a step consumes; ``S`` =
``step_suffix.format(t=t)``, default ``"_t{t}"``):

- a cloned layer is named ``P + base + S``; ``base`` is the ``name=`` the
  step gave the layer, else the state/output name of its first top, else
  ``<Type><k>`` with ``k`` counting unnamed layers of that type in the step
  (deterministic: the template's topological order);
- its top ``n`` is named ``P + key + S`` when the top is a state or output
  (``key`` = its state/output name) or was named in the step with
  :func:`name_tops` (``key`` = that name), else ``P + base + S`` for ``n == 0`` and
  ``P + base + "_<n>" + S`` otherwise;
- input slices: layer ``P + <input name> + "_slice"``, tops
  ``P + <input name> + S``; cont: ``P + "cont_slice"`` / ``P + "cont" + S``;
  states reset by cont: ``P + <state> + "_conted" + S`` (the state entering step
  ``t``); zero initial states: ``P + <state> + "_0"``; concatenated outputs:
  ``P + <output name>``.

Parameter sharing: each learnable parameter of a cloned layer gets the same
``ParamSpec.name`` in every step. Names the step gave (``param=dict(name="WX",
lr_mult=1)``) are kept verbatim with their ``lr_mult``/``decay_mult``; unnamed
ones are named ``P + base + "_w"`` / ``"_b"`` (weight, bias) or
``P + base + "_p<j>"``. The number of parameters is known for InnerProduct,
Convolution, Deconvolution, Embed, Scale, Bias, PReLU, BatchNorm and Parameter;
for other types give every ``param`` spec (with names) yourself.
"""

from __future__ import annotations

import copy
import itertools
import weakref
from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping
from collections.abc import Sequence as _SeqABC

from recaffe.errors import NetError
from recaffe.net_spec import Function, NetSpec, Top

__all__ = ["Sequence", "Unrolled", "name_tops", "named_layer", "num_params",
           "state_input", "unroll", "zeros"]


# -- named layers -----------------------------------------------------------------
class NamedFunction(Function):
    """A NetSpec Function whose layer and top names are fixed at creation.

    A name given to a top through a NetSpec (``ns.h = top``) still wins, as
    for any pycaffe top.
    """

    def __init__(self, type_name: str, inputs, params: dict, top_names=()):
        super().__init__(type_name, inputs, params)
        # top_names may be shorter than the tops (or empty: no fixed names)
        self.fixed_top_names = {
            top: nm for top, nm in zip(self.tops, top_names, strict=False) if nm}

    def _top_name(self, top, names, autonames):
        name = names.get(top)
        if name is None:
            fixed = getattr(top.fn, "fixed_top_names", {}).get(top)
            if fixed is None:
                return Function._top_name(top, names, autonames)
            name = names[top] = fixed
        return name


def named_layer(type_name: str, *inputs: Top, name: str,
                top_names: _SeqABC[str] | None = None, **params):
    """``L.<type_name>(*inputs, **params)`` with a fixed layer name and top names.

    ``top_names`` defaults to ``[name]`` for one top, ``[name, name_1, …]`` for
    more. Returns what ``L.<type>`` returns (Top, tuple of Tops, or Function).
    """
    ntop = params.get("ntop", 1)
    if top_names is None:
        top_names = [name if n == 0 else f"{name}_{n}" for n in range(ntop)]
    fn = NamedFunction(type_name, inputs, dict(params, name=name), top_names)
    if fn.ntop == 0:
        return fn
    return fn.tops[0] if fn.ntop == 1 else fn.tops


def top_name(top: Top) -> str | None:
    """The fixed name of ``top`` (following in-place layers to their bottom)."""
    while top.fn.in_place and top.fn.inputs:
        top = top.fn.inputs[top.n] if top.n < len(top.fn.inputs) else top.fn.inputs[0]
    return getattr(top.fn, "fixed_top_names", {}).get(top)


_STEP_TOP_NAMES: weakref.WeakKeyDictionary[Top, str] = weakref.WeakKeyDictionary()


def name_tops(tops, *names: str):
    """Name tops inside a step: ``r, z = name_tops(L.Slice(..., ntop=2), "r", "z")``.

    :func:`unroll` names each step's copy of such a top ``P + name + S``
    (instead of deriving it from the layer name). Returns ``tops`` unchanged.
    """
    seq = [tops] if isinstance(tops, Top) else list(tops)
    if len(seq) != len(names):
        raise NetError(f"name_tops: {len(seq)} tops, {len(names)} names")
    for top, nm in zip(seq, names, strict=True):
        _STEP_TOP_NAMES[top] = nm
    return tops


def zeros(shape: _SeqABC[int], name: str = "zeros") -> Top:
    """A constant-zero top of ``shape`` (a ``DummyData`` layer), e.g. ``h_0``."""
    return named_layer("DummyData", name=name, shape=dict(dim=[int(d) for d in shape]),
                       data_filler=dict(type="constant"))


def state_input(shape: _SeqABC[int], name: str) -> Top:
    """An ``Input`` top of ``shape`` for a state the caller feeds (e.g. the
    final state of the previous batch, for truncated backprop through time)."""
    return named_layer("Input", name=name, shape=dict(dim=[int(d) for d in shape]))


# -- parameters -------------------------------------------------------------------
_WEIGHT_BIAS = {"InnerProduct": "inner_product", "Convolution": "convolution",
                "Deconvolution": "convolution", "Embed": "embed"}
_FIXED_COUNT = {"PReLU": 1, "BatchNorm": 3, "Parameter": 1}


def _sub(params: Mapping, key: str, stem: str | None, default):
    if key in params:
        return params[key]
    sub = params.get(f"{stem}_param") if stem else None
    if isinstance(sub, Mapping) and key in sub:
        return sub[key]
    return default


def num_params(type_name: str, params: Mapping, num_inputs: int) -> int | None:
    """How many parameter blobs a layer creates, or None when unknown."""
    if type_name in _WEIGHT_BIAS:
        return 1 + bool(_sub(params, "bias_term", _WEIGHT_BIAS[type_name], True))
    if type_name == "Scale":
        return (num_inputs == 1) + bool(_sub(params, "bias_term", "scale", False))
    if type_name == "Bias":
        return int(num_inputs == 1)
    if type_name in _FIXED_COUNT:
        return _FIXED_COUNT[type_name]
    return None


def _param_list(params: Mapping) -> list[dict]:
    spec = params.get("param")
    if spec is None:
        return []
    if isinstance(spec, Mapping):
        return [dict(spec)]
    return [dict(s) for s in spec]


def _share_params(fn: Function, params: dict, base: str) -> None:
    """Give every parameter of a cloned layer a step-independent name."""
    specs = _param_list(params)
    count = num_params(fn.type_name, params, len(fn.inputs))
    if count is not None and len(specs) < count:
        specs.extend({} for _ in range(count - len(specs)))
    if not specs:
        return
    weight_bias = count is not None and count <= 2 and fn.type_name != "PReLU"
    for j, spec in enumerate(specs):
        if not spec.get("name"):
            suffix = ("_w", "_b")[j] if weight_bias else f"_p{j}"
            spec["name"] = base + suffix
    params["param"] = specs


# -- sequences and results --------------------------------------------------------
class Sequence(tuple):
    """A time series already split into T per-step tops (time order).

    ``unroll`` takes a Sequence as an input without slicing it, so one unrolled
    net can consume another's per-step outputs directly.
    """


class Unrolled:
    """What :func:`unroll` built.

    Attributes:
        outputs: one top per step output: the concatenation over time (or the
            last step's top with ``return_last``; the Sequence with
            ``concat=False``).
        output: ``outputs[0]``.
        states: the final state tops (carry them to the next batch).
        initial_states: the state tops fed to the first step.
        steps: per output, its :class:`Sequence` of per-step tops.
        state_steps: per state, its Sequence of per-step tops.
        output_names / state_names: the keys; ``final_state_names`` the blob names
            of ``states``.
        ns: the NetSpec the unrolled tops were assigned to.
    Unpacks as ``output, states = unroll(...)``; ``r["h"]`` is the output of
    that name, else the final state of that name.
    """

    def __init__(self, **kw):
        self.__dict__.update(kw)

    @property
    def output(self):
        return self.outputs[0]

    @property
    def final_state_names(self) -> list[str | None]:
        """Blob names of the final states (to carry them to the next batch)."""
        return [top_name(s) for s in self.states]

    @property
    def output_blob_names(self) -> list[str | None]:
        """Blob names of ``outputs`` (None for a Sequence)."""
        return [top_name(o) if isinstance(o, Top) else None for o in self.outputs]

    def __iter__(self):
        return iter((self.output, list(self.states)))

    def __getitem__(self, key: str):
        if key in self.output_names:
            return self.outputs[self.output_names.index(key)]
        if key in self.state_names:
            return self.states[self.state_names.index(key)]
        raise KeyError(key)

    def to_proto(self):
        """The ``NetParameter`` of ``ns`` (every assigned top and its inputs)."""
        return self.ns.to_proto()


# -- the template ------------------------------------------------------------------
def _placeholder() -> Top:
    return Function("StepInput", (), {}).tops[0]


def _as_list(value, what: str, keys: list[str] | None) -> list:
    if keys is not None:
        if not isinstance(value, Mapping):
            raise NetError(f"unroll: the step must return its {what} as a dict with "
                           f"keys {keys} (states were given as a dict), got "
                           f"{type(value).__name__}")
        missing = [k for k in keys if k not in value]
        if missing:
            raise NetError(f"unroll: step {what} lack keys {missing}")
        return [value[k] for k in keys]
    if isinstance(value, Top):
        return [value]
    if isinstance(value, Mapping):
        return list(value.values())
    if isinstance(value, (list, tuple)):
        return list(value)
    raise NetError(f"unroll: step {what} must be a Top, a list/tuple or a dict of "
                   f"Tops, got {type(value).__name__}")


def _template(outs: list[Top], holders: set[Top]):
    """Functions of the step that depend on a placeholder, in topological order."""
    order: list[Function] = []
    depends: dict[Function, bool] = {}

    def visit(fn: Function) -> bool:
        if fn in depends:
            return depends[fn]
        depends[fn] = False  # guards against (impossible) cycles
        dep = False
        for inp in fn.inputs:
            if inp in holders or visit(inp.fn):
                dep = True
        depends[fn] = dep
        if dep:
            order.append(fn)
        return dep

    for top in outs:
        if not isinstance(top, Top):
            raise NetError(f"unroll: the step returned {type(top).__name__}, not a Top")
        if top not in holders:
            visit(top.fn)
    return order


def _base_names(order: list[Function], keyed: dict[Top, str]) -> dict[Function, str]:
    """The step-independent base name of each template layer."""
    bases: dict[Function, str] = {}
    used: set[str] = set()
    for fn in order:
        user = fn.params.get("name")
        if user:
            if user in used:
                raise NetError(f"unroll: two layers of the step are named '{user}'")
            bases[fn] = user
            used.add(user)
    for fn in order:
        if fn in bases:
            continue
        key = keyed.get(fn.tops[0]) if fn.tops and not fn.in_place else None
        if key and key not in used:
            bases[fn] = key
            used.add(key)
    counts: Counter = Counter()
    for fn in order:
        if fn in bases:
            continue
        while True:
            counts[fn.type_name] += 1
            cand = f"{fn.type_name}{counts[fn.type_name]}"
            if cand not in used:
                break
        bases[fn] = cand
        used.add(cand)
    return bases


def _names_of(items, given, default_one: str, default_many: str) -> list[str]:
    n = len(items)
    if given is not None:
        given = [given] if isinstance(given, str) else list(given)
        if len(given) != n:
            raise NetError(f"unroll: {n} names needed, got {given}")
        return given
    if n == 1:
        return [default_one]
    return [default_many.format(i=i) for i in range(n)]


def _slice(top: Top, T: int, axis: int, width: int | None, points, layer: str,
           tops: list[str]) -> list[Top]:
    if T == 1:
        return [top]
    if points is None:
        w = 1 if width is None else int(width)
        if w < 1:
            raise NetError(f"unroll: slice width must be >= 1, got {width}")
        points = [w * k for k in range(1, T)]
    points = [int(p) for p in points]
    if len(points) != T - 1:
        raise NetError(f"unroll: {T} steps need {T - 1} slice points, got {points}")
    if any(b <= a for a, b in itertools.pairwise(points)) or points[0] <= 0:
        raise NetError(f"unroll: slice points must be positive and increasing, got "
                       f"{points}")
    out = named_layer("Slice", top, name=layer, top_names=tops, ntop=T,
                      slice_param=dict(axis=axis, slice_point=points))
    return list(out)


def _assign(ns: NetSpec, name: str, top: Top) -> None:
    """``ns[name] = top``, never renaming a top the NetSpec already names."""
    old = ns.tops.get(name)
    if old is top:
        return
    if old is not None:
        raise NetError(f"unroll: the NetSpec already has a top named '{name}'; pass "
                       "name= to prefix the unrolled names")
    # ids of the tops already named; rebuilt when the NetSpec changed elsewhere
    cache = vars(ns).get("_unroll_ids")
    if cache is None or cache[0] != len(ns.tops):
        cache = [len(ns.tops), {id(v) for v in ns.tops.values()}]
        object.__setattr__(ns, "_unroll_ids", cache)
    if id(top) in cache[1]:
        return
    ns[name] = top
    cache[0] += 1
    cache[1].add(id(top))


# -- unroll -----------------------------------------------------------------------
def unroll(
    step: Callable,
    inputs,
    T: int,
    *,
    states=(),
    state_names: _SeqABC[str] | None = None,
    input_names: _SeqABC[str] | None = None,
    output_names: _SeqABC[str] | str | None = None,
    axis: int = 0,
    width: int | None = None,
    slice_points: _SeqABC[int] | None = None,
    name: str = "",
    concat_axis: int | None = None,
    concat: bool = True,
    return_last: bool = False,
    reverse: bool = False,
    cont: Top | None = None,
    cont_states: _SeqABC[str] | None = None,
    pass_cont: bool = False,
    step_suffix: str = "_t{t}",
    ns: NetSpec | None = None,
) -> Unrolled:
    """Unroll one recurrent step over ``T`` time steps into NetSpec layers.

    Args:
        step: ``step(x_t, ..., s_tm1, ...) -> (outputs_t, new_states)``: the
            time-varying inputs' slices, then the states, positionally; it
            returns the step's output top(s) (a Top, list, or dict) and new
            state top(s) in the order of ``states``. Dict form: when
            ``inputs``/``states`` are dicts, ``step`` is called with keywords
            (their keys) and returns dicts keyed like ``states`` (and outputs
            keyed by output name). With ``pass_cont=True`` it also gets the
            keyword ``cont`` (the ``(1, N)`` indicator of the step).
        inputs: the time-varying input(s): a Top, a list, or a dict name->Top.
            Each Top is sliced along ``axis`` into T pieces; a
            :class:`Sequence` of T tops is used as is.
        T: number of time steps (>= 1).
        states: initial states, one per state: a Top, or a shape (tuple of
            ints) for zeros (a DummyData layer). A dict name->initial gives the
            state names.
        state_names: names of the states (list form); default ``h`` for one
            state, ``s0``, ``s1``, … otherwise.
        input_names: names of the inputs (list form; they name the slices);
            default ``x`` for one input, ``x0``, ``x1``, … otherwise.
        output_names: names of the step outputs; default ``y`` / ``y0``, ….
        axis: the time axis of the inputs (0: time-major ``T x N x …`` as
            Caffe's recurrent layers; slices then have shape ``(1, N, …)``).
        width: size of each slice along ``axis`` (default 1).
        slice_points: explicit Slice points (T-1 of them), instead of width.
        name: prefix (``name + "_"``) of every generated layer, top and
            automatic parameter name; use distinct names to unroll the same
            step twice in one net.
        concat_axis: axis the per-step outputs are concatenated along
            (default: ``axis``).
        concat: False returns the per-step Sequences as ``outputs``.
        return_last: return only the last step's outputs (no Concat).
        reverse: run from t=T down to 1 (outputs still concatenated in time
            order, so output t belongs to input t).
        cont: ``(T, N)`` sequence-continuation indicators (0 = a sequence
            starts at t): the states in ``cont_states`` are multiplied by
            ``cont_t`` (a Scale layer with ``axis: 0``, as in Caffe) before
            step t. In reverse, step t uses ``cont[t+1]`` (ones for t=T).
        cont_states: names of the states that cont resets (default: all).
        pass_cont: also pass ``cont=cont_t`` to ``step`` (LSTMUnit needs it).
        step_suffix: format of the per-step suffix (``{t}`` = time index).
        ns: NetSpec to assign the generated tops to (in time order, so its
            ``to_proto()`` lists step 1's layers before step 2's). A new one
            is made when None.

    Returns:
        An :class:`Unrolled` (unpacks as ``output, final_states``).
    """
    T = int(T)
    if T < 1:
        raise NetError(f"unroll: T must be >= 1, got {T}")
    prefix = f"{name}_" if name else ""
    ns = NetSpec() if ns is None else ns

    def suffix(t: int) -> str:
        return step_suffix.format(t=t)

    # inputs
    dict_form = isinstance(inputs, Mapping) or isinstance(states, Mapping)
    if isinstance(inputs, Mapping):
        in_names, in_vals = list(inputs.keys()), list(inputs.values())
    else:
        in_vals = [inputs] if isinstance(inputs, (Top, Sequence)) else list(inputs)
        in_names = _names_of(in_vals, input_names, "x", "x{i}")
    # states
    if isinstance(states, Mapping):
        st_names, st_vals = list(states.keys()), list(states.values())
    else:
        st_vals = list(states)
        st_names = _names_of(st_vals, state_names, "h", "s{i}")
    n_states = len(st_vals)
    if cont_states is None:
        reset = set(range(n_states))
    else:
        unknown = [s for s in cont_states if s not in st_names]
        if unknown:
            raise NetError(f"unroll: cont_states {unknown} are not states {st_names}")
        reset = {st_names.index(s) for s in cont_states}
    if pass_cont and cont is None:
        raise NetError("unroll: pass_cont=True needs a cont top")

    # slices of the time-varying inputs
    slices: list[list[Top]] = []
    for nm, val in zip(in_names, in_vals, strict=True):
        if isinstance(val, Sequence) or (isinstance(val, list) and val
                                         and isinstance(val[0], Top)):
            if len(val) != T:
                raise NetError(f"unroll: input '{nm}' has {len(val)} steps, T is {T}")
            slices.append(list(val))
        elif isinstance(val, Top):
            slices.append(_slice(val, T, axis, width, slice_points,
                                 f"{prefix}{nm}_slice",
                                 [f"{prefix}{nm}{suffix(t)}" for t in range(1, T + 1)]))
        else:
            raise NetError(f"unroll: input '{nm}' must be a Top or a Sequence, got "
                           f"{type(val).__name__}")
    # initial states
    init: list[Top] = []
    for nm, val in zip(st_names, st_vals, strict=True):
        if isinstance(val, Top):
            init.append(val)
        elif isinstance(val, (tuple, list)) and all(isinstance(d, int) for d in val):
            init.append(zeros(val, f"{prefix}{nm}_0"))
        else:
            raise NetError(f"unroll: initial state '{nm}' must be a Top or a shape "
                           f"(tuple of ints), got {val!r}")
    # cont per step (index t-1 holds the indicator step t uses)
    cont_steps: list[Top] = []
    if cont is not None:
        c = _slice(cont, T, 0, 1, None, f"{prefix}cont_slice",
                   [f"{prefix}cont{suffix(t)}" for t in range(1, T + 1)])
        if reverse:
            ones = named_layer("Power", c[0], name=f"{prefix}cont_end",
                               power=1.0, scale=0.0, shift=1.0)
            cont_steps = c[1:] + [ones]
        else:
            cont_steps = c

    # list what unroll made before the steps, so ns emits it first
    for seq in slices:
        for top in seq:
            nm = top_name(top)
            if nm is not None and top.fn.type_name == "Slice":
                _assign(ns, nm, top)
    for top, val in zip(init, st_vals, strict=True):
        if top is not val:
            _assign(ns, top_name(top), top)
    if cont is not None:
        for top in cont_steps:
            if isinstance(top.fn, NamedFunction):
                _assign(ns, top_name(top), top)

    # trace the step once on placeholders
    x_ph = [_placeholder() for _ in in_vals]
    s_ph = [_placeholder() for _ in st_vals]
    c_ph = _placeholder() if pass_cont else None
    kw = {"cont": c_ph} if pass_cont else {}
    if dict_form:
        kw.update(zip(in_names, x_ph, strict=True))
        kw.update(zip(st_names, s_ph, strict=True))
        result = step(**kw)
    else:
        result = step(*x_ph, *s_ph, **kw)
    if not (isinstance(result, tuple) and len(result) == 2):
        raise NetError("unroll: the step must return (outputs, new_states), got "
                       f"{type(result).__name__}")
    out_val, new_val = result
    if n_states == 0 and new_val is None:
        new_val = []
    if isinstance(out_val, Mapping):
        out_names = list(out_val.keys())
        outs = list(out_val.values())
    else:
        outs = _as_list(out_val, "outputs", None)
        out_names = _names_of(outs, output_names, "y", "y{i}")
    if n_states == 1 and isinstance(new_val, Top):
        new_val = [new_val]
    new_states = _as_list(new_val, "new states", st_names if dict_form else None)
    if len(new_states) != n_states:
        raise NetError(f"unroll: the step returned {len(new_states)} new states for "
                       f"{n_states} states {st_names}")
    holders = set(x_ph) | set(s_ph) | ({c_ph} if c_ph is not None else set())
    order = _template(outs + new_states, holders)
    keyed: dict[Top, str] = {}
    for key, top in itertools.chain(zip(st_names, new_states, strict=True),
                                    zip(out_names, outs, strict=True)):
        keyed.setdefault(top, key)
    bases = _base_names(order, keyed)

    # clone per step
    times = range(T, 0, -1) if reverse else range(1, T + 1)
    state = list(init)
    out_steps: dict[int, list[Top]] = {}
    st_steps: dict[int, list[Top]] = {}
    for t in times:
        sfx = suffix(t)
        cur = list(state)
        if cont is not None:
            for j in sorted(reset):
                cname = f"{prefix}{st_names[j]}_conted{sfx}"
                cur[j] = named_layer("Scale", cur[j], cont_steps[t - 1], name=cname,
                                     axis=0)
                _assign(ns, cname, cur[j])
        mapping: dict[Top, Top] = dict(
            zip(x_ph, (s[t - 1] for s in slices), strict=True))
        mapping.update(zip(s_ph, cur, strict=True))
        if c_ph is not None:
            mapping[c_ph] = cont_steps[t - 1]
        for fn in order:
            base = bases[fn]
            params = copy.deepcopy(fn.params)
            params["name"] = f"{prefix}{base}{sfx}"
            _share_params(fn, params, f"{prefix}{base}")
            params["ntop"] = fn.ntop
            if fn.in_place:
                params["in_place"] = True
            tnames = []
            for n, top in enumerate(fn.tops):
                key = keyed.get(top) or _STEP_TOP_NAMES.get(top)
                if key is not None:
                    tnames.append(f"{prefix}{key}{sfx}")
                else:
                    tnames.append(f"{prefix}{base}{'' if n == 0 else f'_{n}'}{sfx}")
            new_inputs = [mapping.get(i, i) for i in fn.inputs]
            clone = NamedFunction(fn.type_name, new_inputs, params,
                                  () if fn.in_place else tnames)
            for old, new in zip(fn.tops, clone.tops, strict=True):
                mapping[old] = new
            if not fn.in_place:
                for nm, top in zip(tnames, clone.tops, strict=True):
                    _assign(ns, nm, top)
        out_steps[t] = [mapping.get(o, o) for o in outs]
        state = [mapping.get(s, s) for s in new_states]
        st_steps[t] = list(state)

    seqs = [Sequence(out_steps[t][k] for t in range(1, T + 1))
            for k in range(len(outs))]
    st_seqs = [Sequence(st_steps[t][k] for t in range(1, T + 1))
               for k in range(n_states)]
    if return_last:
        last = T if not reverse else 1
        final_outs: list = [s[last - 1] for s in seqs]
    elif not concat:
        final_outs = list(seqs)
    else:
        cat_axis = axis if concat_axis is None else concat_axis
        final_outs = []
        for nm, seq in zip(out_names, seqs, strict=True):
            top = named_layer("Concat", *seq, name=f"{prefix}{nm}",
                              concat_param=dict(axis=cat_axis))
            _assign(ns, f"{prefix}{nm}", top)
            final_outs.append(top)
    return Unrolled(outputs=final_outs, states=state, initial_states=init,
                    steps=seqs, state_steps=st_seqs, output_names=out_names,
                    state_names=st_names, input_names=in_names, ns=ns,
                    order=OrderedDict((fn, bases[fn]) for fn in order))

