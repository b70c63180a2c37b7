"""The format registry: names, kinds, grids and constants against their sources."""
import pytest
import torch

from explorer import FORMATS, Granularity, Kind, QuantSpec, format_names, get_format, make_spec
from explorer.formats import NF4_VALUES
from explorer.specs import FormatDef, ScaleDType

REQUIRED = ["int2", "int3", "int4", "int5", "int6", "int7", "int8", "fp8_e4m3", "fp8_e5m2", "fp4_e2m1", "nf4",
            "mxfp8", "mxfp4", "mxint8", "nvfp4"]


def test_registry_names_are_exactly_the_required_set():
    assert sorted(format_names()) == sorted(REQUIRED)


@pytest.mark.parametrize("name", REQUIRED)
def test_every_entry_is_complete(name):
    f = get_format(name)
    assert f.name == name and f.description and f.source and f.grid
    assert max(abs(v) for v in f.grid) >= f.max_value > 0
    assert f.kind in Kind


def test_constants_match_the_sources():
    assert get_format("fp8_e4m3").max_value == 448.0 == torch.finfo(torch.float8_e4m3fn).max
    assert get_format("fp8_e5m2").max_value == 57344.0 == torch.finfo(torch.float8_e5m2).max
    assert get_format("fp4_e2m1").grid == (-6, -4, -3, -2, -1.5, -1, -0.5, 0, 0.5, 1, 1.5, 2, 3, 4, 6)
    # QLoRA's NF4 table, as listed to 4 decimals in reference-numbers.md.
    listed = [-1.0, -0.6962, -0.5251, -0.3949, -0.2844, -0.1848, -0.0911, 0, 0.0796, 0.1609, 0.2461, 0.3379,
              0.4407, 0.5626, 0.7230, 1.0]
    assert [round(v, 4) for v in NF4_VALUES] == pytest.approx(listed, abs=1e-4)
    assert get_format("int4").grid[0] == -8 and get_format("int4").grid[-1] == 7
    assert len(get_format("fp8_e4m3").grid) == 253  # 256 patterns - 2 NaNs - duplicate zero
    assert len(get_format("fp8_e5m2").grid) == 247  # 256 - 6 NaNs - 2 infinities - duplicate zero
    for name, block in (("mxfp8", 32), ("mxfp4", 32), ("mxint8", 32), ("nvfp4", 16)):
        assert get_format(name).block_size == block


def test_unknown_format_names_the_allowed_set():
    with pytest.raises(ValueError, match=r"unknown format 'int9'.*int8.*nvfp4"):
        get_format("int9")


def test_spec_validation_names_bad_value_and_allowed_set():
    with pytest.raises(ValueError, match=r"group_size=0 .*>= 1"):
        make_spec("int4", "group", 0)
    with pytest.raises(ValueError, match=r"granularity='rows' .*\['tensor', 'channel', 'group', 'block'\]"):
        make_spec("int4", "rows")
    with pytest.raises(ValueError, match=r"granularity='channel' is not allowed for block format mxfp4"):
        make_spec("mxfp4", "channel")
    with pytest.raises(ValueError, match=r"granularity='block' is only for block formats"):
        make_spec("int8", "block")
    with pytest.raises(ValueError, match=r"symmetric=False .* only for integer formats"):
        make_spec("nf4", "group", 64, symmetric=False)
    with pytest.raises(ValueError, match=r"scale_dtype='fp64'"):
        make_spec("int8", "channel", scale_dtype="fp64")
    with pytest.raises(ValueError, match=r"must be a FormatDef"):
        QuantSpec("int8")


def test_specs_are_frozen_hashable_cache_keys():
    a = make_spec("int4", "group", 128, symmetric=False)
    b = make_spec("int4", Granularity.GROUP, 128, False, ScaleDType.FP16)
    assert a == b and hash(a) == hash(b)
    assert make_spec("int8", "channel", 128) == make_spec("int8", "channel", 64)  # group size normalised away
    with pytest.raises(Exception):
        a.group_size = 64  # frozen


def test_usual_granularities():
    assert make_spec("int8").granularity is Granularity.CHANNEL
    assert make_spec("int4").group_size == 128
    assert make_spec("nf4").group_size == 64
    assert make_spec("mxfp4").granularity is Granularity.BLOCK
    assert make_spec("int4").label == "int4 g128"
    assert make_spec("int4", "group", 128, symmetric=False).label == "int4 g128 asym"


def test_formatdef_validates_itself():
    with pytest.raises(ValueError, match="sorted"):
        FormatDef("x", Kind.INT, 4, (1.0, 0.0), 1.0, "d", "s")
    with pytest.raises(ValueError, match="block_size"):
        FormatDef("x", Kind.BLOCK, 4, (0.0, 1.0), 1.0, "d", "s")
