"""explorer: what quantization does to real weights, as a torch library (never imports streamlit).

Layers, one way only: specs -> formats -> primitives -> quantize -> metrics/storage -> methods -> plots.
"""
from explorer.formats import FORMATS, format_names, get_format, make_spec, usual_spec
from explorer.specs import FormatDef, Granularity, Kind, QuantSpec, ScaleDType

__all__ = ["FORMATS", "FormatDef", "Granularity", "Kind", "QuantSpec", "ScaleDType",
           "format_names", "get_format", "make_spec", "usual_spec"]
