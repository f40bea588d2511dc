"""Write the deploy definitions of the BVLC model-zoo nets that the ONNX tests
export: AlexNet, GoogLeNet, R-CNN ILSVRC13 and Flickr style (CaffeNet is
tests/golden/caffenet_deploy.prototxt). Each follows the published
architecture; run ``python tests/golden/bvlc/generate.py`` to rewrite them."""

from __future__ import annotations

import os
import sys

from recaffe import layers as L
from recaffe import params as P
from recaffe.net_spec import NetSpec

HERE = os.path.dirname(os.path.abspath(__file__))
MAX, AVE = P.Pooling.MAX, P.Pooling.AVE


def conv_relu(ns, name, bottom, nout, ks, stride=1, pad=0, group=1):
    ns[name] = L.Convolution(bottom, num_output=nout, kernel_size=ks, stride=stride,
                             pad=pad, group=group)
    ns[f"relu_{name}" if "/" not in name else name.replace("/", "/relu_", 1)] = \
        L.ReLU(ns[name], in_place=True)
    return ns[name]


def alexnet_body(ns, lrn_first: bool):
    """conv1..fc7 of AlexNet (lrn_first) or CaffeNet (pooling before LRN)."""
    x = ns.data
    lrn = dict(local_size=5, alpha=1e-4, beta=0.75)
    def norm_and_pool(i, x):
        if lrn_first:
            ns[f"norm{i}"] = L.LRN(x, **lrn)
            ns[f"pool{i}"] = L.Pooling(ns[f"norm{i}"], pool=MAX, kernel_size=3,
                                       stride=2)
            return ns[f"pool{i}"]
        ns[f"pool{i}"] = L.Pooling(x, pool=MAX, kernel_size=3, stride=2)
        ns[f"norm{i}"] = L.LRN(ns[f"pool{i}"], **lrn)
        return ns[f"norm{i}"]

    x = norm_and_pool(1, conv_relu(ns, "conv1", x, 96, 11, stride=4))
    x = norm_and_pool(2, conv_relu(ns, "conv2", x, 256, 5, pad=2, group=2))
    x = conv_relu(ns, "conv3", x, 384, 3, pad=1)
    x = conv_relu(ns, "conv4", x, 384, 3, pad=1, group=2)
    x = conv_relu(ns, "conv5", x, 256, 3, pad=1, group=2)
    ns.pool5 = L.Pooling(x, pool=MAX, kernel_size=3, stride=2)
    x = ns.pool5
    for fc in ("fc6", "fc7"):
        ns[fc] = L.InnerProduct(x, num_output=4096)
        ns[f"relu{fc[2:]}"] = L.ReLU(ns[fc], in_place=True)
        ns[f"drop{fc[2:]}"] = L.Dropout(ns[fc], dropout_ratio=0.5, in_place=True)
        x = ns[fc]
    return x


def image_input(ns, size):
    ns.data = L.Input(shape=dict(dim=[10, 3, size, size]))


def alexnet():
    ns = NetSpec()
    image_input(ns, 227)
    x = alexnet_body(ns, lrn_first=True)
    ns.fc8 = L.InnerProduct(x, num_output=1000)
    ns.prob = L.Softmax(ns.fc8)
    return ns, "AlexNet"


def rcnn_ilsvrc13():
    ns = NetSpec()
    image_input(ns, 227)
    x = alexnet_body(ns, lrn_first=False)
    # 200 detection scores, no softmax (R-CNN feeds them to SVM-style scoring).
    ns["fc-rcnn"] = L.InnerProduct(x, num_output=200)
    return ns, "R-CNN-ilsvrc13"


def flickr_style():
    ns = NetSpec()
    image_input(ns, 227)
    x = alexnet_body(ns, lrn_first=False)
    ns.fc8_flickr = L.InnerProduct(x, num_output=20)
    ns.prob = L.Softmax(ns.fc8_flickr)
    return ns, "FlickrStyleCaffeNet"


def inception(ns, name, x, n1, n3r, n3, n5r, n5, npool):
    b1 = conv_relu(ns, f"{name}/1x1", x, n1, 1)
    b3 = conv_relu(ns, f"{name}/3x3_reduce", x, n3r, 1)
    b3 = conv_relu(ns, f"{name}/3x3", b3, n3, 3, pad=1)
    b5 = conv_relu(ns, f"{name}/5x5_reduce", x, n5r, 1)
    b5 = conv_relu(ns, f"{name}/5x5", b5, n5, 5, pad=2)
    ns[f"{name}/pool"] = L.Pooling(x, pool=MAX, kernel_size=3, stride=1, pad=1)
    bp = conv_relu(ns, f"{name}/pool_proj", ns[f"{name}/pool"], npool, 1)
    ns[f"{name}/output"] = L.Concat(b1, b3, b5, bp)
    return ns[f"{name}/output"]


def googlenet():
    ns = NetSpec()
    image_input(ns, 224)
    lrn = dict(local_size=5, alpha=1e-4, beta=0.75)
    x = conv_relu(ns, "conv1/7x7_s2", ns.data, 64, 7, stride=2, pad=3)
    ns["pool1/3x3_s2"] = L.Pooling(x, pool=MAX, kernel_size=3, stride=2)
    ns["pool1/norm1"] = L.LRN(ns["pool1/3x3_s2"], **lrn)
    x = conv_relu(ns, "conv2/3x3_reduce", ns["pool1/norm1"], 64, 1)
    x = conv_relu(ns, "conv2/3x3", x, 192, 3, pad=1)
    ns["conv2/norm2"] = L.LRN(x, **lrn)
    ns["pool2/3x3_s2"] = L.Pooling(ns["conv2/norm2"], pool=MAX, kernel_size=3,
                                   stride=2)
    x = ns["pool2/3x3_s2"]
    blocks = {
        "3a": (64, 96, 128, 16, 32, 32), "3b": (128, 128, 192, 32, 96, 64),
        "4a": (192, 96, 208, 16, 48, 64), "4b": (160, 112, 224, 24, 64, 64),
        "4c": (128, 128, 256, 24, 64, 64), "4d": (112, 144, 288, 32, 64, 64),
        "4e": (256, 160, 320, 32, 128, 128), "5a": (256, 160, 320, 32, 128, 128),
        "5b": (384, 192, 384, 48, 128, 128),
    }
    for key, widths in blocks.items():
        x = inception(ns, f"inception_{key}", x, *widths)
        if key in ("3b", "4e"):
            pool = f"pool{int(key[0])}/3x3_s2"
            ns[pool] = L.Pooling(x, pool=MAX, kernel_size=3, stride=2)
            x = ns[pool]
    ns["pool5/7x7_s1"] = L.Pooling(x, pool=AVE, kernel_size=7, stride=1)
    ns["pool5/drop_7x7_s1"] = L.Dropout(ns["pool5/7x7_s1"], dropout_ratio=0.4,
                                        in_place=True)
    ns["loss3/classifier"] = L.InnerProduct(ns["pool5/7x7_s1"], num_output=1000)
    ns.prob = L.Softmax(ns["loss3/classifier"])
    return ns, "GoogleNet"


NETS = {"alexnet": alexnet, "googlenet": googlenet, "rcnn_ilsvrc13": rcnn_ilsvrc13,
        "flickr_style": flickr_style}


def main() -> int:
    for stem, build in NETS.items():
        ns, name = build()
        param = ns.to_proto()
        param.name = name
        path = os.path.join(HERE, f"{stem}_deploy.prototxt")
        with open(path, "w") as f:
            f.write(f"# {name} deploy definition (written by generate.py from the "
                    "published architecture).\n")
            f.write(str(param))
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
