"""The README's unrolling snippet runs and builds a net whose steps share weights."""

from __future__ import annotations

import re
from pathlib import Path

import recaffe

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_unroll_snippet_runs():
    text = README.read_text(encoding="utf-8")
    section = text.split("## Unrolling a step written once", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)  # noqa: S102 - our own README
    proto = scope["ns"].to_proto()
    names = {p.name for lp in proto.layer for p in lp.param}
    assert names == {"zX_w", "zX_b", "zH_w", "out_w", "out_b"}
    zx = [lp for lp in proto.layer if lp.name.startswith("zX_t")]
    assert len(zx) == 9
    net = recaffe.Net(proto, recaffe.TRAIN)
    assert net.blobs[net.outputs[0]].data.shape == (100, 9)
