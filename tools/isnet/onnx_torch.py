"""ONNX graph -> torch.nn.Module, for the small op set of the IS-Net export.

Supported: Conv, Relu, MaxPool, Concat, Resize (linear, half_pixel, by sizes), Add,
Sigmoid, Cast (between float16 and float32), Shape, Slice, Constant. Anything else is
refused with a clear error rather than guessed at.

The module computes in float32: fp16 initializers are widened (exactly) to fp32 and the
export's Cast nodes between float16 and float32 become no-ops. Only the nodes the chosen
output needs are kept (the export also returns five side outputs and six feature maps,
which inference does not use). Shape arithmetic (Shape -> Slice -> Concat -> Resize
sizes) runs on Python int lists, so a trace records plain size reads.
"""
import re
from typing import Dict, List

import numpy as np
import onnx
from onnx import numpy_helper
import torch
import torch.nn.functional as F

FLOAT, FLOAT16, INT64 = 1, 10, 7
SUPPORTED = {"Conv", "Relu", "MaxPool", "Concat", "Resize", "Add", "Sigmoid", "Cast",
             "Shape", "Slice", "Constant"}


class ConversionError(Exception):
    pass


def attrs(node):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def needed_nodes(graph, outputs):
    """The graph's nodes that `outputs` depend on, in a valid evaluation order (the fp16
    export appends its Cast nodes at the end, out of order)."""
    producer = {}
    for node in graph.node:
        for o in node.output:
            producer[o] = node
    order, state = [], {}
    for out in outputs:
        stack = [(producer[out], False)] if out in producer else []
        while stack:
            node, done = stack.pop()
            key = id(node)
            if done:
                if state.get(key) != 2:
                    state[key] = 2
                    order.append(node)
                continue
            if state.get(key):
                continue
            state[key] = 1
            stack.append((node, True))
            for i in node.input:
                if i and i in producer and not state.get(id(producer[i])):
                    stack.append((producer[i], False))
    return order


def _slice_list(data, starts, ends, axes, steps):
    if axes not in (None, [0]) or len(starts) != 1:
        raise ConversionError("Slice of a shape supports one axis only")
    step = steps[0] if steps else 1
    n = len(data)
    s, e = starts[0], ends[0]
    s = max(0, min(n, s + n if s < 0 else s))
    e = max(0, min(n, e + n if e < 0 else e))
    return list(data[s:e:step])


class OnnxModule(torch.nn.Module):
    """Runs the listed ONNX nodes with torch ops. Weights are buffers (fp32)."""

    def __init__(self, model: onnx.ModelProto, output: str, input_name: str):
        super().__init__()
        graph = model.graph
        self.input_name = input_name
        self.output_name = output
        nodes = needed_nodes(graph, [output])
        inits = {t.name: t for t in graph.initializer}
        self._buffer_of: Dict[str, str] = {}
        self._constants: Dict[str, List[int]] = {}
        self._steps = []
        used = {i for n in nodes for i in n.input if i}
        for name in sorted(used & set(inits)):
            arr = numpy_helper.to_array(inits[name])
            if arr.dtype == np.float16 or arr.dtype == np.float32:
                bname = "w_" + re.sub(r"[^0-9A-Za-z_]", "_", name)
                if bname in self._buffer_of.values():
                    raise ConversionError("two initializers map to buffer name %s" % bname)
                self.register_buffer(bname, torch.from_numpy(arr.astype(np.float32)))
                self._buffer_of[name] = bname
            elif arr.dtype == np.int64:
                self._constants[name] = [int(v) for v in arr.reshape(-1)]
            else:
                raise ConversionError("initializer %s has unsupported dtype %s" % (name, arr.dtype))
        for node in nodes:
            op = node.op_type
            if op not in SUPPORTED:
                raise ConversionError("unsupported ONNX op %s (node %s)" % (op, node.name))
            a = attrs(node)
            if op == "Constant":
                arr = numpy_helper.to_array(a["value"])
                if arr.dtype != np.int64:
                    raise ConversionError("Constant %s is %s, expected int64" % (node.output[0], arr.dtype))
                self._constants[node.output[0]] = [int(v) for v in arr.reshape(-1)]
                continue
            if op == "Cast" and a["to"] not in (FLOAT, FLOAT16):
                raise ConversionError("Cast to type %d is not supported" % a["to"])
            if op == "Conv":
                if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
                    raise ConversionError("Conv auto_pad is not supported")
                if len(a.get("kernel_shape", [0, 0])) != 2:
                    raise ConversionError("only 2-D Conv is supported")
            if op == "MaxPool":
                if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET") or a.get("storage_order", 0):
                    raise ConversionError("MaxPool auto_pad / storage_order not supported")
                if any(d != 1 for d in a.get("dilations", [1, 1])):
                    raise ConversionError("dilated MaxPool is not supported")
            if op == "Resize":
                if a.get("mode") != b"linear" or a.get("coordinate_transformation_mode") != b"half_pixel":
                    raise ConversionError("Resize supports mode=linear, half_pixel only (node %s)" % node.name)
                if len(node.input) < 4 or not node.input[3]:
                    raise ConversionError("Resize without 'sizes' is not supported")
                if a.get("exclude_outside", 0):
                    raise ConversionError("Resize exclude_outside is not supported")
            self._steps.append((op, list(node.input), list(node.output), a))

    def _value(self, env, name):
        if name in env:
            return env[name]
        if name in self._buffer_of:
            return getattr(self, self._buffer_of[name])
        if name in self._constants:
            return self._constants[name]
        raise ConversionError("value %s is not available" % name)

    def forward(self, x):
        env = {self.input_name: x}
        for op, ins, outs, a in self._steps:
            v = [self._value(env, i) if i else None for i in ins]
            if op == "Conv":
                pads = a.get("pads", [0, 0, 0, 0])
                inp = v[0]
                if pads[0] == pads[2] and pads[1] == pads[3]:
                    padding = (pads[0], pads[1])
                else:
                    inp = F.pad(inp, (pads[1], pads[3], pads[0], pads[2]))
                    padding = (0, 0)
                y = F.conv2d(inp, v[1], v[2] if len(v) > 2 else None,
                             stride=tuple(a.get("strides", [1, 1])), padding=padding,
                             dilation=tuple(a.get("dilations", [1, 1])), groups=a.get("group", 1))
            elif op == "Relu":
                y = torch.relu(v[0])
            elif op == "Sigmoid":
                y = torch.sigmoid(v[0])
            elif op == "Add":
                y = v[0] + v[1]
            elif op == "Cast":
                y = v[0]  # float16 <-> float32: the module computes in float32 throughout
            elif op == "MaxPool":
                pads = a.get("pads", [0, 0, 0, 0])
                inp = v[0]
                if pads[0] == pads[2] and pads[1] == pads[3]:
                    padding = (pads[0], pads[1])
                else:
                    inp = F.pad(inp, (pads[1], pads[3], pads[0], pads[2]), value=float("-inf"))
                    padding = (0, 0)
                y = F.max_pool2d(inp, tuple(a["kernel_shape"]), tuple(a.get("strides", [1, 1])),
                                 padding, ceil_mode=bool(a.get("ceil_mode", 0)))
            elif op == "Concat":
                if isinstance(v[0], list):
                    y = [int(i) for part in v for i in part]
                else:
                    y = torch.cat(v, dim=a["axis"])
            elif op == "Shape":
                y = list(v[0].shape)
            elif op == "Slice":
                y = _slice_list(v[0], v[1], v[2], v[3] if len(v) > 3 else None,
                                v[4] if len(v) > 4 else None)
            elif op == "Resize":
                sizes = v[3]
                if list(sizes[:2]) != list(v[0].shape[:2]):
                    raise ConversionError("Resize of the batch or channel axis is not supported")
                y = F.interpolate(v[0], size=(int(sizes[2]), int(sizes[3])), mode="bilinear",
                                  align_corners=False)
            else:  # pragma: no cover - refused in __init__
                raise ConversionError(op)
            env[outs[0]] = y
        return env[self.output_name]


def convert(onnx_path, output="output", input_name="input"):
    """Loads the ONNX file and returns an eval-mode OnnxModule for `output`."""
    model = onnx.load(onnx_path)
    return OnnxModule(model, output, input_name).eval()
