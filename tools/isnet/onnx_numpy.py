"""A straightforward numpy evaluation of the IS-Net ONNX graph: the reference the torch
conversion is checked against. It shares no code with onnx_torch and uses no torch.

Each node is evaluated from the ONNX operator definitions (opset 15), in float32 (fp16
initializers widened exactly, float16<->float32 Casts as identities, like the converter;
`fp16_casts=True` instead rounds to float16 at every Cast to float16, to see what the
export's own precision would give):
  Conv     sum over the kernel taps of W[:, :, ky, kx] @ (shifted input), on a row-padded
           flat layout so each shift is a plain offset (im2col without the copy)
  MaxPool  -inf padding up to the ceil_mode output size, then a max over each window
  Resize   linear, half_pixel: x_in = (x_out + 0.5) / scale - 0.5, clamped to the edge,
           applied separably along H then W (exactly bilinear)
  Shape / Slice / Concat (axis 0) / Constant  on int64 arrays
"""
import numpy as np
import onnx
from onnx import numpy_helper


def _attrs(node):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _order(graph, outputs):
    producer = {o: n for n in graph.node for o in n.output}
    seen, order = set(), []

    def visit(name):
        node = producer.get(name)
        if node is None or id(node) in seen:
            return
        seen.add(id(node))
        for i in node.input:
            if i:
                visit(i)
        order.append(node)

    import sys
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, 20000))
    try:
        for o in outputs:
            visit(o)
    finally:
        sys.setrecursionlimit(old)
    return order


def conv2d(x, w, b, strides, pads, dilations, group):
    """x [1, C, H, W], w [O, C, kh, kw]; ONNX Conv with explicit pads [t, l, b, r]."""
    if group != 1 or x.shape[0] != 1:
        raise NotImplementedError("conv2d: group 1, batch 1 only")
    _, c, h, wd = x.shape
    o, c2, kh, kw = w.shape
    assert c == c2, (c, c2)
    sh, sw = strides
    dh, dw = dilations
    pt, pl, pb, pr = pads
    hp, wp = h + pt + pb, wd + pl + pr
    # full-resolution (stride 1) output extent on the padded grid
    oh1 = hp - dh * (kh - 1)
    ow1 = wp - dw * (kw - 1)
    xp = np.zeros((c, hp + 1, wp), dtype=np.float32)  # one spare row: the last shifts stay in range
    xp[:, pt:pt + h, pl:pl + wd] = x[0]
    flat = xp.reshape(c, -1)
    n = oh1 * wp
    acc = np.zeros((o, n), dtype=np.float32)
    for ky in range(kh):
        for kx in range(kw):
            off = ky * dh * wp + kx * dw
            tap = np.ascontiguousarray(w[:, :, ky, kx])  # a strided operand would miss BLAS
            acc += tap @ flat[:, off:off + n]
    y = acc.reshape(o, oh1, wp)[:, ::sh, :ow1:sw]
    if b is not None:
        y = y + b[:, None, None]
    return y[None].astype(np.float32, copy=False)


def maxpool2d(x, kernel, strides, pads, ceil_mode):
    _, c, h, w = x.shape
    kh, kw = kernel
    sh, sw = strides
    pt, pl, pb, pr = pads
    rnd = np.ceil if ceil_mode else np.floor
    oh = int(rnd((h + pt + pb - kh) / sh)) + 1
    ow = int(rnd((w + pl + pr - kw) / sw)) + 1
    if ceil_mode:  # the last window must start inside the (left/top padded) input
        if (oh - 1) * sh >= h + pt:
            oh -= 1
        if (ow - 1) * sw >= w + pl:
            ow -= 1
    need_h = (oh - 1) * sh + kh
    need_w = (ow - 1) * sw + kw
    xp = np.full((x.shape[0], c, max(need_h, h + pt), max(need_w, w + pl)), -np.inf, dtype=np.float32)
    xp[:, :, pt:pt + h, pl:pl + w] = x
    y = np.full((x.shape[0], c, oh, ow), -np.inf, dtype=np.float32)
    for ky in range(kh):
        for kx in range(kw):
            y = np.maximum(y, xp[:, :, ky:ky + sh * (oh - 1) + 1:sh, kx:kx + sw * (ow - 1) + 1:sw])
    return y


def _linear_axis(x, axis, out_size):
    n = x.shape[axis]
    if n == out_size:
        return x
    scale = out_size / n
    pos = (np.arange(out_size, dtype=np.float64) + 0.5) / scale - 0.5
    pos = np.clip(pos, 0, n - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, n - 1)
    frac = (pos - lo).astype(np.float32)
    shape = [1] * x.ndim
    shape[axis] = out_size
    frac = frac.reshape(shape)
    a = np.take(x, lo, axis=axis)
    b = np.take(x, hi, axis=axis)
    return (a * (1 - frac) + b * frac).astype(np.float32)


def resize_linear_half_pixel(x, sizes):
    y = x
    for axis, s in enumerate(sizes):
        if int(s) != x.shape[axis]:
            if axis < 2:
                raise NotImplementedError("Resize of batch/channel axes")
            y = _linear_axis(y, axis, int(s))
    return y


class Evaluator:
    def __init__(self, path_or_model):
        self.model = onnx.load(path_or_model) if isinstance(path_or_model, str) else path_or_model
        self.inits = {t.name: numpy_helper.to_array(t) for t in self.model.graph.initializer}

    def run(self, inputs, outputs=("output",), fp16_casts=False):
        g = self.model.graph
        env = dict(inputs)
        for k, v in self.inits.items():
            env[k] = v.astype(np.float32) if v.dtype == np.float16 else v
        keep = set(outputs)
        nodes = _order(g, list(outputs))
        # free intermediate values after their last use (the 1024 graph is large)
        last_use = {}
        for i, node in enumerate(nodes):
            for name in node.input:
                last_use[name] = i
        for i, node in enumerate(nodes):
            a = _attrs(node)
            v = [env[n] if n else None for n in node.input]
            op = node.op_type
            if op == "Constant":
                y = numpy_helper.to_array(a["value"])
            elif op == "Conv":
                y = conv2d(v[0], v[1], v[2] if len(v) > 2 else None, a.get("strides", [1, 1]),
                           a.get("pads", [0, 0, 0, 0]), a.get("dilations", [1, 1]), a.get("group", 1))
            elif op == "Relu":
                y = np.maximum(v[0], np.float32(0))
            elif op == "Sigmoid":
                y = (1.0 / (1.0 + np.exp(-v[0].astype(np.float64)))).astype(np.float32)
            elif op == "Add":
                y = v[0] + v[1]
            elif op == "Cast":
                if a["to"] == 10 and fp16_casts:
                    y = v[0].astype(np.float16).astype(np.float32)
                elif a["to"] in (1, 10):
                    y = v[0].astype(np.float32)
                else:
                    raise NotImplementedError("Cast to %d" % a["to"])
            elif op == "MaxPool":
                y = maxpool2d(v[0], a["kernel_shape"], a.get("strides", [1, 1]),
                              a.get("pads", [0, 0, 0, 0]), a.get("ceil_mode", 0))
            elif op == "Concat":
                y = np.concatenate(v, axis=a["axis"])
            elif op == "Shape":
                y = np.array(v[0].shape, dtype=np.int64)
            elif op == "Slice":
                data, starts, ends = v[0], v[1], v[2]
                axes = v[3] if len(v) > 3 and v[3] is not None else np.arange(len(starts))
                steps = v[4] if len(v) > 4 and v[4] is not None else np.ones(len(starts), np.int64)
                idx = [slice(None)] * data.ndim
                for s, e, ax, st in zip(starts, ends, axes, steps):
                    dim = data.shape[ax]
                    s = int(np.clip(s + dim if s < 0 else s, 0, dim))
                    e = int(np.clip(e + dim if e < 0 else e, 0, dim))
                    idx[ax] = slice(s, e, int(st))
                y = data[tuple(idx)]
            elif op == "Resize":
                if a.get("mode") != b"linear" or a.get("coordinate_transformation_mode") != b"half_pixel":
                    raise NotImplementedError("Resize mode")
                y = resize_linear_half_pixel(v[0], v[3])
            else:
                raise NotImplementedError(op)
            env[node.output[0]] = y
            for name in node.input:
                if name and last_use.get(name) == i and name not in keep and name not in self.inits \
                        and name not in inputs:
                    env.pop(name, None)
        return [env[o] for o in outputs]
