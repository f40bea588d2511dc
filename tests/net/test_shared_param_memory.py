"""Building a net frees each sharer's own filled copy of a shared parameter at
once (an unrolled net has one per time step), with the same initial values."""

import tracemalloc

import recaffe as caffe
from recaffe import layers as L


def _shared_chain(T, K):
    ns = caffe.NetSpec()
    ns.x = L.Input(shape=dict(dim=[2, K]))
    h = ns.x
    for t in range(T):
        h = L.InnerProduct(h, num_output=K, bias_term=False, param=dict(name="W"),
                           weight_filler=dict(type="uniform", min=-0.1, max=0.1))
        setattr(ns, f"h{t}", h)
    return ns.to_proto()


def test_sharers_copies_do_not_accumulate_while_building():
    T, K = 32, 512  # W: 1 MiB of float32 per step
    caffe.set_random_seed(3)
    tracemalloc.start()
    try:
        net = caffe.Net(_shared_chain(T, K), caffe.TRAIN)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    w_bytes = K * K * 4
    # The owner (data, diff) and one transient sharer copy with the filler's
    # float64 draw (about 7 W in all), not one copy per step (about 37 W).
    assert peak < 10 * w_bytes, peak / w_bytes
    owner = net.params["h0"][0]
    for t in range(1, T):
        assert net.params[f"h{t}"][0].shares_data_with(owner)
