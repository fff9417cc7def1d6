"""Each trainer's tiny CPU fp32 run reproduces its pinned first losses and metrics (tests/assets/golden/).

The net under refactors of the loops: a change that alters any number of these runs fails here. Regenerate with
`scripts/make_golden.py` only when the change is meant to alter them (see tests/trainers/golden.py).
"""
import json

import pytest
from golden import ASSETS, KEYS, run


@pytest.mark.parametrize("trainer", list(KEYS))
def test_first_steps_match_the_golden_numbers(trainer, tiny_model_dir, tmp_path):
    expected = json.loads((ASSETS / f"{trainer}.json").read_text())
    got = run(trainer, tiny_model_dir, tmp_path)
    assert [r["step"] for r in got] == [r["step"] for r in expected]
    for g, e in zip(got, expected):
        for k in KEYS[trainer]:
            assert g[k] == pytest.approx(e[k], rel=1e-5, abs=1e-6), (trainer, g["step"], k, g[k], e[k])
