"""The int8 contract and its executable spec. plan.py: QuantPlan, QParams, Ranges, SHAPE_OPS,
the fixed sigmoid/tanh parameters, quant.json read and written whole; fixed.py: TFLite's
fixed-point helpers; int8_dynamic.py and int8.py: the numpy kernels of precisions
"int8-dynamic" (int8 weights, float activations) and "int8" (full integer)."""
