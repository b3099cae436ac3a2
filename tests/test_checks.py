"""cnnlab.checks, the argument checks every package shares: worked examples of what each
accepts, what it returns and the exact error (class and message) for what it refuses."""
from __future__ import annotations

import numpy as np
import pytest

from cnnlab import checks as C


@pytest.mark.parametrize("fn,args,value,expected", [
    (C.positive_int, ("filters",), np.int64(3), 3),
    (C.nonneg_int, ("seed",), 0, 0),
    (C.int_at_least, ("total_steps", 2), 2, 2),
    (C.real_in, ("rate", 0.0, 1.0, False, True), np.float32(0.5), 0.5),
    (C.real_in, ("lr", 0.0), np.array(1e-3), 1e-3),      # 0-d arrays are numbers
    (C.real_number, ("alpha",), float("nan"), None),      # NaN passes: ops propagate it
    (C.boolean, ("use_bias",), np.bool_(True), True),
    (C.choice, ("mode", ("min", "max")), "max", "max"),
    (C.sample_shape, (), [1, 28, 28], (1, 28, 28)),
    (C.sample_shape, (), 10, (10,)),
    (C.float_dtype, (), "float64", np.dtype(np.float64)),
])
def test_accepted_values_come_back_normalized(fn, args, value, expected):
    got = fn(value, *args)
    if expected is None:
        assert np.isnan(got)
    else:
        assert got == expected and type(got) is type(expected)


@pytest.mark.parametrize("fn,args,value,exc,message", [
    (C.positive_int, ("filters",), 0, ValueError, "filters must be positive, got 0"),
    (C.positive_int, ("filters",), True, TypeError, "filters must be an integer, got bool True"),
    (C.positive_int, ("filters",), 2.0, TypeError, "filters must be an integer, got float 2.0"),
    (C.nonneg_int, ("padding",), -1, ValueError, "padding must be non-negative, got -1"),
    (C.int_at_least, ("batch_size", 1), 0, ValueError, "batch_size must be >= 1, got 0"),
    (C.real_in, ("rate", 0.0, 1.0, False, True), 1.0, ValueError,
     "rate must be in [0.0, 1.0), got 1.0"),
    (C.real_in, ("eps", 0.0, None, True), 0.0, ValueError, "eps must be in (0.0, inf], got 0.0"),
    (C.real_in, ("lr", 0.0), float("inf"), ValueError, "lr must be in [0.0, inf], got inf"),
    (C.real_in, ("lr",), "0.1", TypeError, "lr must be a number, got str '0.1'"),
    (C.real_number, ("delta",), None, TypeError, "delta must be a real number, got NoneType None"),
    (C.boolean, ("use_bias",), 1, TypeError, "use_bias must be True or False, got int 1"),
    (C.choice, ("mode", ("min", "max")), "avg", ValueError,
     "mode must be one of ['min', 'max'], got 'avg'"),
    (C.sample_shape, (), (1, 0, 28), ValueError,
     "input_shape must hold positive ints (per sample, channels first, e.g. (1, 28, 28)), "
     "got (1, 0, 28)"),
    (C.float_dtype, (), np.int32, TypeError,
     "dtype must be a floating dtype such as np.float32, got int32"),
    (C.int_tuple, (2, "stride"), (1, 2, 3), ValueError,
     "stride must have 2 entries (one per spatial axis), got 3: (1, 2, 3)"),
])
def test_refused_values_say_which_argument_what_was_expected_and_what_came(
        fn, args, value, exc, message):
    with pytest.raises(exc) as info:
        fn(value, *args)
    assert str(info.value) == message


def test_owned_by_puts_the_owner_in_front_and_keeps_the_class():
    with pytest.raises(TypeError) as info, C.owned_by("Conv2D"):
        C.positive_int("8", "filters")
    assert str(info.value) == "Conv2D: filters must be an integer, got str '8'"
    assert info.value.__cause__ is None and info.value.__suppress_context__
    with C.owned_by("Conv2D"):
        assert C.positive_int(8, "filters") == 8


def test_padding_and_window_sizes_match_the_formula():
    # 'same' on an even kernel pads the extra cell at the high end, as PyTorch does
    assert C.resolve_padding("same", (4, 3), (1, 1), (1, 2)) == ((1, 2), (2, 2))
    assert C.resolve_padding("full", (3,), (2,), (1,)) == ((2, 2),)
    assert C.resolve_padding(((1, 0), 2), (3, 3), (1, 1), (1, 1)) == ((1, 0), (2, 2))
    # floor((n + lo + hi - d(f - 1) - 1) / s) + 1: 32x32, 5x5, pad 2, stride 1 -> 32;
    # 7, 3, stride 2 -> 3; dilation 2 on 10 with f 3 -> 6
    assert C.output_shape((32, 7, 10), (5, 3, 3), (1, 2, 1), ((2, 2), (0, 0), (0, 0)),
                          (1, 1, 2)) == (32, 3, 6)
    with pytest.raises(ValueError, match="padding='same' needs stride 1"):
        C.resolve_padding("same", (3,), (2,), (1,))
    with pytest.raises(ValueError, match=r"kernel size 5 \(dilation 1\) on spatial axis 0 is "
                                         r"larger than the padded input: 3 \+ padding 0\+0 = 3"):
        C.output_shape((3,), (5,), (1,), ((0, 0),), (1,))
