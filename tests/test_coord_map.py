"""coord_map: coordinate maps between NetSpec tops and automatic Crop."""

import numpy as np
import pytest

import recaffe as caffe
from recaffe import layers as L
from recaffe import params as P
from recaffe.coord_map import coord_map_from_to, crop


def coord_net_spec(ks=3, stride=1, pad=0, pool=2, dstride=2, dpad=0):
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[2, 1, 100, 100]))
    n.aux = L.Input(shape=dict(dim=[2, 1, 20, 20]))
    n.conv = L.Convolution(n.data, num_output=10, kernel_size=ks, stride=stride,
                           pad=pad)
    n.pool = L.Pooling(n.conv, pool=P.Pooling.MAX, kernel_size=pool, stride=pool, pad=0)
    deconv_ks = [s * 2 for s in dstride] if isinstance(dstride, list) else dstride * 2
    n.deconv = L.Deconvolution(n.pool, num_output=10, kernel_size=deconv_ks,
                               stride=dstride, pad=dpad)
    return n


def test_conv_pool_deconv():
    n = coord_net_spec()
    ax, a, b = coord_map_from_to(n.deconv, n.data)
    assert ax == 1 and np.all(a == 1) and np.all(b == 0)
    n = coord_net_spec(pool=4, dstride=4)
    ax, a, b = coord_map_from_to(n.deconv, n.data)
    assert ax == 1 and np.all(a == 1) and np.all(b == -1)


def test_pass_through():
    n = coord_net_spec()
    ref = coord_map_from_to(n.deconv, n.data)
    n.relu = L.ReLU(n.deconv)
    n.conv1x1 = L.Convolution(n.relu, num_output=10, kernel_size=1, stride=1, pad=0)
    for top in (n.relu, n.conv1x1):
        ax, a, b = coord_map_from_to(top, n.data)
        assert ax == ref[0] and np.all(a == ref[1]) and np.all(b == ref[2])


def test_padding_shifts_offset():
    n = coord_net_spec(pad=2)
    _, a2, b2 = coord_map_from_to(n.deconv, n.data)
    assert np.all(a2 == 1) and np.all(b2 == -2)


def test_anisotropic_and_nd():
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[2, 1, 50, 60]))
    n.conv = L.Convolution(n.data, num_output=4, kernel_size=[3, 5], pad=[1, 2])
    ax, a, b = coord_map_from_to(n.conv, n.data)
    assert ax == 1 and np.all(a == 1) and np.all(b == 0)


def test_crop_helper():
    # Deconvolution needs convolution_param=... to be serialized (spec 2.2)
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[2, 1, 100, 100]))
    n.conv = L.Convolution(n.data, num_output=10, kernel_size=3)
    n.pool = L.Pooling(n.conv, pool=P.Pooling.MAX, kernel_size=4, stride=4)
    n.deconv = L.Deconvolution(n.pool, convolution_param=dict(
        num_output=10, kernel_size=8, stride=4))
    n.crop = crop(n.deconv, n.data)
    lp = n.to_proto().layer[-1]
    assert lp.type == "Crop" and list(lp.bottom) == ["deconv", "data"]
    assert lp.crop_param.axis == 2 and list(lp.crop_param.offset) == [1]


def test_crop_of_crop():
    n = coord_net_spec(pool=4, dstride=4)
    n.crop = crop(n.deconv, n.data)
    ax, a, b = coord_map_from_to(n.crop, n.data)
    assert ax == 1 and np.all(a == 1) and np.all(b == 0)


def test_unconnected_raises_runtime_error():
    n = coord_net_spec()
    n.ip = L.InnerProduct(n.deconv, num_output=10)
    with pytest.raises(RuntimeError):
        coord_map_from_to(n.ip, n.data)


def test_scale_mismatch_and_negative_crop():
    n = coord_net_spec()
    with pytest.raises(AssertionError, match="scale mismatch"):
        crop(n.pool, n.data)
    n = coord_net_spec(pad=2)
    with pytest.raises(AssertionError, match="negative"):
        crop(n.data, n.deconv)
