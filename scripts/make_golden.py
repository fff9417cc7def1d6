"""Write tests/assets/golden/<trainer>.json: the first logged numbers of each trainer's tiny CPU fp32 run.

    .venv/bin/python scripts/make_golden.py            # all four trainers
    .venv/bin/python scripts/make_golden.py dpo ppo    # some

The runs are defined in tests/trainers/golden.py (tiny Llama from tests/conftest.py, synthetic pairs); the test
tests/trainers/test_golden.py reruns them and compares. Regenerate only for a change meant to alter the numbers.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests"), str(REPO / "tests" / "trainers")]
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main(argv: list[str]) -> int:
    from conftest import make_model, make_tokenizer
    from golden import ASSETS, KEYS, run

    trainers = argv or list(KEYS)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / "tiny"
        tok = make_tokenizer()
        make_model(tok).save_pretrained(model_dir)
        tok.save_pretrained(model_dir)
        ASSETS.mkdir(parents=True, exist_ok=True)
        for t in trainers:
            rows = run(t, model_dir, Path(tmp) / "work")
            (ASSETS / f"{t}.json").write_text(json.dumps(rows, indent=1) + "\n")
            print(f"{t}: {len(rows)} rows -> {ASSETS / f'{t}.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
