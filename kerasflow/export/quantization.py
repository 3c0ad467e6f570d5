"""What TFLite's converter really quantized: read from the converted flatbuffer, never assumed.

``weights_left_float(data)`` lists the ops whose weights stayed float32 (what dynamic-range int8 was
asked to make int8); ``float_ops(data)`` lists the ops that still compute in float32 in a full-integer
model. Both count ops by their builtin name, e.g. ``{"CONV_3D": 20}``. ``tensor_names(data)`` lists the
tensors' names (the scopes int8 keeps float are found by them).
"""

import collections

import numpy as np

# The converter's dynamic-range quantization leaves weights of fewer elements float on purpose
# (TFLite's ``min_elements_for_weights``); larger float weights are ones it could not quantize.
MIN_QUANTIZED_ELEMENTS = 1024
# Ops that only move numbers between float and integer at the edges of the quantized graph.
BOUNDARY_OPS = ("QUANTIZE", "DEQUANTIZE", "CAST")


def _graph(data):
    """``(model, subgraph, op name of operator index)`` of a TFLite flatbuffer ``data`` (bytes)."""
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
    names = {value: name for name, value in vars(schema.BuiltinOperator).items() if not name.startswith("_")}

    def op_name(op):
        code = model.operatorCodes[op.opcodeIndex]
        return names.get(max(code.builtinCode, code.deprecatedBuiltinCode), "CUSTOM")

    return model, model.subgraphs[0], op_name


def tensor_names(data):
    """The names of the tensors of a TFLite flatbuffer ``data`` (bytes)."""
    _, subgraph, _ = _graph(data)
    return [tensor.name.decode() for tensor in subgraph.tensors]


def _is_constant(model, tensor):
    """Whether ``tensor`` holds a constant (its buffer has data, inline or, in large files, at an offset)."""
    buffer = model.buffers[tensor.buffer]
    return buffer.data is not None or bool(getattr(buffer, "size", 0))


def weight_summary(data):
    """``{"float": {op: count}, "float_bytes": n, "int8_bytes": n}`` of the weights (constant inputs of at
    least ``MIN_QUANTIZED_ELEMENTS`` elements) of a TFLite model: by op, those left float32, and the
    bytes of float32 and int8 weights."""
    from tensorflow.lite.python import schema_py_generated as schema

    model, graph, op_name = _graph(data)
    left = collections.Counter()
    sizes = {"float_bytes": 0, "int8_bytes": 0}
    seen = set()
    for op in graph.operators:
        for index in op.inputs:
            if index < 0:
                continue
            tensor = graph.tensors[index]
            elements = int(np.prod(tensor.shape)) if tensor.shape is not None else 0
            if not _is_constant(model, tensor) or elements < MIN_QUANTIZED_ELEMENTS:
                continue
            if tensor.type == schema.TensorType.FLOAT32:
                left[op_name(op)] += 1
                if index not in seen:
                    sizes["float_bytes"] += 4 * elements
            elif tensor.type == schema.TensorType.INT8 and index not in seen:
                sizes["int8_bytes"] += elements
            seen.add(index)
    return {"float": dict(sorted(left.items())), **sizes}


def float_ops(data):
    """``{op name: count}`` of the ops of a TFLite model that read or write float32 tensors computed at
    run time, the ``BOUNDARY_OPS`` that convert at the quantized graph's edges left out."""
    from tensorflow.lite.python import schema_py_generated as schema

    model, graph, op_name = _graph(data)
    found = collections.Counter()
    for op in graph.operators:
        name = op_name(op)
        tensors = [graph.tensors[index] for index in (*op.inputs, *op.outputs) if index >= 0]
        if name not in BOUNDARY_OPS and any(tensor.type == schema.TensorType.FLOAT32 and not _is_constant(model, tensor)
                                            for tensor in tensors):
            found[name] += 1
    return dict(sorted(found.items()))


def describe(ops):
    """``"CONV_3D x20, SPLIT x1"`` of ``{op name: count}``."""
    return ", ".join(f"{name} x{count}" for name, count in ops.items())
