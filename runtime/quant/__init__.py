"""The int8 contract (plan.py: QuantPlan, QParams, quant.json) and its executable spec:
fixed.py (TFLite's fixed-point helpers), int8_dynamic.py and int8.py (the numpy integer kernels)."""
