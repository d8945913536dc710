"""The declarative argument checks (monitoring.validation): what each constraint accepts, and the messages."""

import math

import numpy as np
import pandas as pd
import pytest

from monitoring.validation import InstanceOf, Interval, Nullable, Options, validate_params


@validate_params(n=Interval(int, 2), share=Interval(float, 0, 1, "right"), task=Options("a", "b"),
                 frame=InstanceOf(pd.DataFrame), now=Nullable(Interval(float)))
def checked(frame, n=4, *, share=0.5, task="a", now=None):
    return n


def test_valid_arguments_pass_and_defaults_are_checked_too():
    assert checked(pd.DataFrame(), 3, share=1, task="b", now=1.5e9) == 3
    assert checked(pd.DataFrame(), np.int64(2)) == 2


@pytest.mark.parametrize("kwargs, message", [
    ({"n": 1}, "n must be an integer >= 2; got 1"),
    ({"n": 2.0}, "n must be an integer >= 2; got 2.0"),
    ({"n": True}, "n must be an integer >= 2; got True"),
    ({"share": 0}, r"share must be a number in \(0, 1\]; got 0"),
    ({"share": math.nan}, r"share must be a number in \(0, 1\]; got nan"),
    ({"task": "c"}, "task must be one of 'a', 'b'; got 'c'"),
    ({"now": math.inf}, "now must be a number \\(finite\\) or None; got inf"),
])
def test_each_refusal_names_the_argument_the_rule_and_the_value(kwargs, message):
    with pytest.raises(ValueError, match=message):
        checked(pd.DataFrame(), **kwargs)


def test_a_wrong_type_and_an_array_are_described():
    with pytest.raises(ValueError, match="frame must be a DataFrame; got"):
        checked([1, 2])
    with pytest.raises(ValueError, match=r"task must be one of 'a', 'b'; got ndarray of shape \(2,\)"):
        checked(pd.DataFrame(), task=np.array(["a", "b"]))


def test_naming_a_parameter_the_function_lacks_fails_at_decoration():
    with pytest.raises(TypeError, match=r"has no parameter\(s\) \['m'\]"):
        validate_params(m=Interval(int))(lambda n: n)
