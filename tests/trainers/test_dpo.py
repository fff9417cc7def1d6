"""DPO trainer on tiny models: it learns, the reference stays put, resume is exact, NaN is skipped, guards hold."""
import json

import pytest
import torch
import yaml
from synthetic import interrupt_after_step, write_pairs

from rlhfkit.cli import main
from rlhfkit.config import DPOConfig, build_config
from rlhfkit.errors import RlhfkitError
from rlhfkit.trainers import dpo, loop
from rlhfkit.trainers.loop import read_metrics


@pytest.fixture()
def pairs_file(tmp_path):
    return write_pairs(tmp_path / "pairs.jsonl", 160)


def cfg_for(model_dir, data, out, **kw):
    base = dict(model=str(model_dir), data=str(data), output=str(out), learning_rate=1e-2, beta=0.1,
                batch_size=8, max_steps=6, precision="fp32", progress=False, save_steps=0, lr_scheduler="constant",
                max_length=64, max_prompt_length=32)
    base.update(kw)
    return build_config(DPOConfig, **base)


def losses(out):
    return [r["train/loss"] for r in read_metrics(out) if "train/loss" in r]


def test_tiny_model_learns_the_preference(tiny_model_dir, tmp_path):
    data = write_pairs(tmp_path / "p.jsonl", 240)
    cfg = cfg_for(tiny_model_dir, data, tmp_path / "out", eval_fraction=0.25, max_steps=30)
    final = dpo.train_dpo(cfg)
    ev = [r for r in read_metrics(tmp_path / "out") if "eval/rewards/accuracies" in r][-1]
    assert ev["eval/rewards/accuracies"] >= 0.9, ev
    assert ev["eval/rewards/margins"] > 0
    from transformers import AutoModelForCausalLM

    assert AutoModelForCausalLM.from_pretrained(final) is not None
    assert (tmp_path / "out" / "config.yaml").is_file()
    keys = set(read_metrics(tmp_path / "out")[0])
    for k in ("train/loss", "rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins",
              "logps/chosen", "logps/rejected", "grad_norm", "learning_rate", "perf/pairs_per_sec",
              "perf/tokens_per_sec"):
        assert k in keys, k


def _one_batch(cfg, tokenizer):
    train, _, _ = dpo.load_pair_data(cfg, tokenizer)
    return train, dpo.pack(train.pairs[:8], tokenizer.pad_token_id, cfg, torch.device("cpu"))


def _steps(policy, ref, adapter_off, train, batch, cfg, n, autocast_each=True):
    """n optimizer steps on one batch with the trainer's own pieces; returns policy log-probs before each step."""
    opt = loop.make_optimizer(policy, cfg)
    seen = []
    for _ in range(n):
        with loop.autocast(torch.device("cpu"), cfg.precision):
            pol = dpo.sequence_logprobs(policy, batch).float()
        seen.append(pol.detach().clone())
        ref_lp = dpo._ref_for(list(range(8)), batch, train, ref, cfg, adapter_off)
        loss, _ = dpo.dpo_losses(pol, ref_lp, batch, cfg)
        loss.mean().backward()
        opt.step()
        opt.zero_grad()
    return seen


def test_reference_parameters_bit_identical_after_training(tiny_model_dir, pairs_file, tmp_path):
    from rlhfkit.models.load import load_tokenizer

    cfg = cfg_for(tiny_model_dir, pairs_file, tmp_path / "o")
    policy, ref, adapter_off = dpo.load_models(cfg, torch.device("cpu"))
    assert not adapter_off and ref is not policy
    before = {k: v.clone() for k, v in ref.state_dict().items()}
    train, batch = _one_batch(cfg, load_tokenizer(str(tiny_model_dir)))
    seen = _steps(policy, ref, adapter_off, train, batch, cfg, 3)
    assert not torch.equal(seen[0], seen[-1])                        # the policy moved
    for k, v in ref.state_dict().items():
        assert torch.equal(v, before[k]), k                          # the reference did not
    assert all(not p.requires_grad for p in ref.parameters())


def test_lora_reference_equals_base_model(tiny_model_dir, pairs_file, tmp_path):
    from rlhfkit.models.forward import sequence_logprobs
    from rlhfkit.models.load import load_model, load_tokenizer

    cfg = cfg_for(tiny_model_dir, pairs_file, tmp_path / "o", lora=True, lora_r=4, lora_alpha=8,
                  learning_rate=5e-2)
    policy, ref, adapter_off = dpo.load_models(cfg, torch.device("cpu"))
    assert adapter_off and ref is policy                              # no second copy
    train, batch = _one_batch(cfg, load_tokenizer(str(tiny_model_dir)))
    seen = _steps(policy, ref, adapter_off, train, batch, cfg, 3)
    assert not torch.equal(seen[0], seen[-1])                         # the adapter learned something
    base = load_model(str(tiny_model_dir))
    with torch.no_grad():
        want = sequence_logprobs(base, batch)
    got = dpo.reference_logps(ref, batch, cfg.precision, adapter_off=True)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


def test_bf16_outputs_change_after_every_optimizer_step(tiny_model_dir, pairs_file, tmp_path):
    """An autocast region spanning optimizer steps would keep serving stale bf16 weight copies."""
    from rlhfkit.models.load import load_tokenizer

    cfg = cfg_for(tiny_model_dir, pairs_file, tmp_path / "o", precision="bf16", learning_rate=1e-3)
    policy, ref, adapter_off = dpo.load_models(cfg, torch.device("cpu"))
    train, batch = _one_batch(cfg, load_tokenizer(str(tiny_model_dir)))
    seen = _steps(policy, ref, adapter_off, train, batch, cfg, 4)
    for a, b in zip(seen, seen[1:]):
        assert not torch.equal(a, b)


def test_resume_after_sigint_reproduces_losses_exactly(tiny_model_dir, pairs_file, tmp_path, monkeypatch):
    full = cfg_for(tiny_model_dir, pairs_file, tmp_path / "a", max_steps=8, shuffle=True, save_steps=100)
    dpo.train_dpo(full)
    want = losses(tmp_path / "a")
    assert len(want) == 8

    # Ctrl-C after step 3: a real SIGINT to this process, delivered while metrics are written
    interrupt_after_step(monkeypatch, 3)
    cut = cfg_for(tiny_model_dir, pairs_file, tmp_path / "b", max_steps=8, shuffle=True, save_steps=100)
    with pytest.raises(loop.Interrupted, match="step 3"):
        dpo.train_dpo(cut)
    assert [d.name for d in loop.checkpoint_dirs(tmp_path / "b")] == ["step-3"]
    monkeypatch.undo()
    dpo.train_dpo(cut)                                                  # the same command again resumes
    assert losses(tmp_path / "b") == want                               # exactly, fp32 on CPU


def test_checkpoints_are_kept_to_the_limit(tiny_model_dir, pairs_file, tmp_path):
    dpo.train_dpo(cfg_for(tiny_model_dir, pairs_file, tmp_path / "o", max_steps=6, save_steps=2,
                          save_total_limit=2))
    names = [d.name for d in loop.checkpoint_dirs(tmp_path / "o")]
    assert names == ["step-2", "step-4"]
    ck = tmp_path / "o" / "checkpoints" / "step-4"
    assert (ck / "model" / "config.json").is_file() and (ck / "trainer_state.pt").is_file()
    assert not any(p.name.startswith(".tmp") for p in (tmp_path / "o" / "checkpoints").iterdir())


def test_nan_loss_is_skipped_then_stops(tiny_model_dir, pairs_file, tmp_path, monkeypatch):
    real = dpo.preference_loss
    calls = {"n": 0}

    def sometimes_nan(*a, **k):
        out = real(*a, **k)
        calls["n"] += 1
        if calls["n"] == 2:                                        # one bad step: skipped, counted
            return (out[0] * float("nan"),) + out[1:]
        return out

    monkeypatch.setattr(dpo, "preference_loss", sometimes_nan)
    dpo.train_dpo(cfg_for(tiny_model_dir, pairs_file, tmp_path / "a", max_steps=4))
    rows = [r for r in read_metrics(tmp_path / "a") if "train/loss" in r]
    assert [r["train/skipped_steps"] for r in rows] == [0, 1, 1, 1]

    def always_nan_after_2(*a, **k):
        out = real(*a, **k)
        calls["n"] += 1
        return (out[0] * float("nan"),) + out[1:] if calls["n"] > 2 else out

    calls["n"] = 0
    monkeypatch.setattr(dpo, "preference_loss", always_nan_after_2)
    with pytest.raises(loop.TrainingStopped) as e:
        dpo.train_dpo(cfg_for(tiny_model_dir, pairs_file, tmp_path / "b", max_steps=10, save_steps=2))
    msg = str(e.value)
    assert "step 5" in msg and "3 non-finite" in msg and "step-2" in msg
    assert [d.name for d in loop.checkpoint_dirs(tmp_path / "b")] == ["step-2"]   # intact


def test_base_model_guard(tiny_base_model_dir, pairs_file, tmp_path):
    with pytest.raises(RlhfkitError, match="rlhfkit sft"):
        dpo.train_dpo(cfg_for(tiny_base_model_dir, pairs_file, tmp_path / "a"))
    final = dpo.train_dpo(cfg_for(tiny_base_model_dir, pairs_file, tmp_path / "b", allow_base_model=True,
                                  max_steps=2))
    assert (final / "config.json").is_file()


def test_precompute_ref_matches_live_reference_and_is_reused(tiny_model_dir, pairs_file, tmp_path):
    dpo.train_dpo(cfg_for(tiny_model_dir, pairs_file, tmp_path / "live", max_steps=4))
    dpo.train_dpo(cfg_for(tiny_model_dir, pairs_file, tmp_path / "pre", max_steps=4, precompute_ref=True))
    torch.testing.assert_close(torch.tensor(losses(tmp_path / "pre")), torch.tensor(losses(tmp_path / "live")),
                               atol=1e-6, rtol=0)
    cache = tmp_path / "pre" / dpo.REF_CACHE
    assert cache.is_file()
    stamp = cache.stat().st_mtime_ns
    dpo.train_dpo(cfg_for(tiny_model_dir, pairs_file, tmp_path / "pre", max_steps=4, precompute_ref=True))
    assert cache.stat().st_mtime_ns == stamp                               # reused, not recomputed


def test_lora_final_is_merged_plus_adapter(tiny_model_dir, pairs_file, tmp_path):
    from transformers import AutoModelForCausalLM

    final = dpo.train_dpo(cfg_for(tiny_model_dir, pairs_file, tmp_path / "o", lora=True, lora_r=4,
                                  max_steps=2))
    assert (final / "adapter" / "adapter_config.json").is_file()
    m = AutoModelForCausalLM.from_pretrained(final)
    assert not any("lora" in n for n, _ in m.named_parameters())
    only = dpo.train_dpo(cfg_for(tiny_model_dir, pairs_file, tmp_path / "p", lora=True, lora_r=4, max_steps=2,
                                 save_adapter_only=True))
    assert (only / "adapter_config.json").is_file() and not (only / "config.json").exists()


@pytest.mark.parametrize("loss_type", ["sigmoid", "robust", "ipo", "hinge"])
def test_every_loss_type_trains(tiny_model_dir, pairs_file, tmp_path, loss_type):
    ls = 0.1 if loss_type in ("sigmoid", "robust") else 0.0
    dpo.train_dpo(cfg_for(tiny_model_dir, pairs_file, tmp_path / "o", loss_type=loss_type, label_smoothing=ls,
                          max_steps=3))
    got = losses(tmp_path / "o")
    assert len(got) == 3 and all(torch.isfinite(torch.tensor(got)))


def test_config_file_and_flag_overrides(tiny_model_dir, pairs_file, tmp_path, capsys):
    conf = tmp_path / "dpo.yaml"
    conf.write_text(yaml.safe_dump({"beta": 0.5, "max_steps": 2, "learning_rate": 0.001, "precision": "fp32",
                                    "lora_target_modules": ["q_proj", "v_proj"]}))
    from rlhfkit.cli import build_parser

    args = build_parser().parse_args(["dpo", "--config", str(conf), "--beta", "0.2", "--no-progress"])
    cfg = build_config(DPOConfig, args)
    assert (cfg.beta, cfg.max_steps, cfg.learning_rate, cfg.progress) == (0.2, 2, 0.001, False)
    assert cfg.lora_target_modules == ["q_proj", "v_proj"]

    bad = tmp_path / "bad.yaml"
    bad.write_text("betta: 0.1\n")
    assert main(["dpo", "--config", str(bad), "--data", str(pairs_file), "-o", str(tmp_path / "x")]) == 2
    assert "unknown key(s) betta" in capsys.readouterr().err

    rc = main(["dpo", "--config", str(conf), "--model", str(tiny_model_dir), "--data", str(pairs_file),
               "-o", str(tmp_path / "run"), "--no-progress", "--max-length", "64", "--max-prompt-length", "32"])
    assert rc == 0
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["beta"] == 0.5 and saved["max_steps"] == 2 and saved["max_length"] == 64


def test_cli_errors_are_one_line(tmp_path, capsys, pairs_file):
    assert main(["dpo", "--data", str(tmp_path / "missing.jsonl"), "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "missing.jsonl" in err and "Traceback" not in err
    assert main(["dpo", "--data", str(pairs_file), "-o", str(tmp_path / "o"), "--loss-type", "nope"]) == 2
    assert "loss_type must be one of" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["dpo", "--beta", "abc"])
    assert e.value.code == 2


def test_eval_only_json(tiny_model_dir, pairs_file, tmp_path, capsys):
    final = dpo.train_dpo(cfg_for(tiny_model_dir, pairs_file, tmp_path / "o", max_steps=8, learning_rate=2e-3))
    capsys.readouterr()
    rc = main(["dpo", "--eval-only", "--model", str(final), "--eval-data", str(pairs_file), "--json",
               "--precision", "fp32", "--max-length", "64", "--max-prompt-length", "32"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["eval/rewards/accuracies"] > 0.9 and "eval/loss" in out        # reference read from the run


def test_report_to_tensorboard(tiny_model_dir, pairs_file, tmp_path):
    pytest.importorskip("tensorboard", reason="the [tracking] extra is not installed")
    dpo.train_dpo(cfg_for(tiny_model_dir, pairs_file, tmp_path / "o", max_steps=2, report_to=["tensorboard"]))
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (events,) = (tmp_path / "o" / "tensorboard").glob("events.out.tfevents.*")
    acc = EventAccumulator(str(events))
    acc.Reload()
    assert [e.step for e in acc.Scalars("train/loss")] == [1, 2]
    assert "rewards/accuracies" in acc.Tags()["scalars"]
