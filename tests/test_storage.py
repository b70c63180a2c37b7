"""Storage accounting, hand-computed."""
import pytest

from explorer import make_spec
from explorer.storage import bits_per_weight, storage


@pytest.mark.parametrize("spec,shape,bpw", [
    (make_spec("int4", "group", 128, symmetric=False), (4096, 4096), 4 + 32 / 128),   # 4.25: fp16 scale + zero
    (make_spec("int4", "group", 128), (4096, 4096), 4 + 16 / 128),                    # 4.125
    (make_spec("int4", "group", 128, scale_dtype="fp32"), (4096, 4096), 4 + 32 / 128),
    (make_spec("int8", "channel"), (4096, 11008), 8 + 16 / 11008),
    (make_spec("int8", "tensor"), (100, 100), 8 + 16 / 10000),
    (make_spec("int3", "group", 64, symmetric=False), (10, 640), 3 + 32 / 64),
    (make_spec("nf4", "group", 64), (64, 64), 4 + 16 / 64),
    (make_spec("fp8_e4m3", "tensor", scale_dtype="fp32"), (1000, 1000), 8 + 32 / 1e6),
    (make_spec("mxfp4"), (4096, 4096), 4.25),                                          # 4 + 8/32
    (make_spec("mxfp8"), (4096, 4096), 8.25),
    (make_spec("mxint8"), (32, 64), 8.25),
    (make_spec("nvfp4"), (4096, 4096), 4 + 8 / 16 + 32 / 4096 ** 2),                   # ~4.5
])
def test_bits_per_weight_hand_computed(spec, shape, bpw):
    assert bits_per_weight(spec, shape) == pytest.approx(bpw, rel=1e-12)


def test_a_short_last_group_costs_a_full_scale():
    st = storage(make_spec("int4", "group", 128), (2, 130))  # groups of 128 and 2 per row
    assert st.n_scales == 4
    assert st.total_bits == 2 * 130 * 4 + 4 * 16
    st = storage(make_spec("mxfp4"), (1, 33))  # blocks of 32 and 1
    assert st.n_scales == 2 and st.scale_bits == 16


def test_packed_bytes():
    st = storage(make_spec("int4", "group", 128, symmetric=False), (4096, 4096))
    assert st.packed_bytes == 4096 * 4096 // 2 + 2 * (4096 * 32 * 2)
    st = storage(make_spec("int3", "channel"), (3, 3))  # 27 bits of codes -> 4 bytes, 3 fp16 scales -> 6 bytes
    assert st.packed_bytes == 4 + 6


def test_bad_shape():
    with pytest.raises(ValueError, match=r"shape=\(10,\) is not allowed"):
        storage(make_spec("int8"), (10,))
