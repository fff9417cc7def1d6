"""SFT on a tiny model: the completion loss falls, prompt tokens are not targets, forms parse, resume is exact."""
import json

import pytest
import torch

from rlhfkit.cli import main
from rlhfkit.config import SFTConfig, build_config
from rlhfkit.data.sft import load_sft_examples, split_sft_examples
from rlhfkit.errors import DataError
from rlhfkit.trainers.loop import read_metrics
from rlhfkit.trainers.sft import pack, sft_loss, tokenize_examples, train_sft


def write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture()
def sft_file(tmp_path):
    rows = [{"prompt": f"Customer: my order {i} is wrong.", "completion": "Sorry! a refund ships today."}
            for i in range(64)]
    return write(tmp_path / "sft.jsonl", rows)


def cfg_for(model_dir, data, out, **kw):
    base = dict(model=str(model_dir), data=str(data), output=str(out), learning_rate=1e-2, batch_size=8,
                max_steps=12, precision="fp32", progress=False, save_steps=0, lr_scheduler="constant",
                max_length=64, max_prompt_length=32)
    base.update(kw)
    return build_config(SFTConfig, **base)


def test_forms(tmp_path):
    f = write(tmp_path / "a.jsonl", [
        {"prompt": "p", "completion": "c"},
        {"prompt": "p", "response": "r"},
        {"instruction": "do", "input": "x", "output": "o"},
    ])
    ex = load_sft_examples(str(f))
    assert [(e.prompt, e.completion) for e in ex] == [("p", "c"), ("p", "r"), ("do\n\nx", "o")]
    m = write(tmp_path / "m.jsonl", [{"messages": [{"role": "user", "content": "hi"},
                                                   {"role": "assistant", "content": "hello"}]}])
    (e,) = load_sft_examples(str(m))
    assert e.prompt == [{"role": "user", "content": "hi"}] and e.completion == [{"role": "assistant",
                                                                                 "content": "hello"}]
    pref = load_sft_examples("bundled:support")
    assert len(pref) >= 300 and isinstance(pref[0].completion, str)        # SFT on the chosen responses
    bad = write(tmp_path / "b.jsonl", [{"prompt": "p", "completion": "c"}, {"prompt": "p"}])
    with pytest.raises(DataError, match=r"b.jsonl:2: completion"):
        load_sft_examples(str(bad))


def test_split_keeps_prompts_apart(sft_file):
    ex = load_sft_examples(str(sft_file))
    train, test = split_sft_examples(ex, 0.25, seed=0)
    assert train and test and not {e.prompt for e in train} & {e.prompt for e in test}


def test_loss_is_on_completion_tokens_only(tiny_tokenizer, sft_file):
    cfg = build_config(SFTConfig, data=str(sft_file), output="x", max_length=512, max_prompt_length=256)
    (t,) = tokenize_examples(load_sft_examples(str(sft_file))[:1], tiny_tokenizer, cfg, "t")
    batch = pack([t], tiny_tokenizer.pad_token_id, cfg, torch.device("cpu"))
    assert batch.target_ids.tolist() == t.completion_ids                 # the targets are the completion
    assert t.completion_ids[-1] == tiny_tokenizer.eos_token_id            # ending with EOS once
    # the loss is the token mean of -log p over those targets
    lp = torch.tensor([-1.0, -2.0, -3.0])
    loss, m = sft_loss(lp, batch)
    assert loss.item() == pytest.approx(2.0) and m["tokens"] == 3
    cfg_all = build_config(SFTConfig, data=str(sft_file), output="x", completion_only_loss=False)
    (t2,) = tokenize_examples(load_sft_examples(str(sft_file))[:1], tiny_tokenizer, cfg_all, "t")
    assert len(t2.completion_ids) == len(t.prompt_ids) + len(t.completion_ids) - 1


@pytest.mark.parametrize("packing", [False, True])
def test_tiny_model_learns_and_saves(tiny_model_dir, sft_file, tmp_path, packing):
    final = train_sft(cfg_for(tiny_model_dir, sft_file, tmp_path / "o", packing=packing, eval_fraction=0.2))
    rows = read_metrics(tmp_path / "o")
    train = [r["train/loss"] for r in rows if "train/loss" in r]
    assert train[-1] < 0.5 * train[0]
    ev = [r["eval/loss"] for r in rows if "eval/loss" in r]
    assert ev and ev[-1] < train[0]
    from transformers import AutoModelForCausalLM

    assert AutoModelForCausalLM.from_pretrained(final).config.num_hidden_layers == 2


def test_packing_gives_the_same_loss(tiny_model_dir, sft_file, tmp_path):
    train_sft(cfg_for(tiny_model_dir, sft_file, tmp_path / "a", packing=False, max_steps=3))
    train_sft(cfg_for(tiny_model_dir, sft_file, tmp_path / "b", packing=True, max_steps=3))
    a = [r["train/loss"] for r in read_metrics(tmp_path / "a")]
    b = [r["train/loss"] for r in read_metrics(tmp_path / "b")]
    torch.testing.assert_close(torch.tensor(a), torch.tensor(b), atol=1e-5, rtol=0)


def test_resume_is_exact(tiny_model_dir, sft_file, tmp_path):
    train_sft(cfg_for(tiny_model_dir, sft_file, tmp_path / "a", max_steps=6, shuffle=True))
    want = [r["train/loss"] for r in read_metrics(tmp_path / "a")]
    # a run that checkpointed at step 3 and then died: keep only its checkpoint and first 3 metric lines
    train_sft(cfg_for(tiny_model_dir, sft_file, tmp_path / "b", max_steps=6, shuffle=True, save_steps=3))
    out = tmp_path / "b"
    import shutil

    shutil.rmtree(out / "final")
    lines = (out / "metrics.jsonl").read_text().splitlines()
    (out / "metrics.jsonl").write_text("\n".join(lines[:3]) + "\n")
    train_sft(cfg_for(tiny_model_dir, sft_file, out, max_steps=6, shuffle=True, save_steps=3))
    got = [r["train/loss"] for r in read_metrics(out)]
    assert got == want


def test_lora_sft_cli(tiny_model_dir, sft_file, tmp_path):
    rc = main(["sft", "--model", str(tiny_model_dir), "--data", str(sft_file), "-o", str(tmp_path / "o"),
               "--lora", "--lora-r", "4", "--max-steps", "2", "--precision", "fp32", "--no-progress",
               "--max-length", "64", "--max-prompt-length", "32"])
    assert rc == 0
    assert (tmp_path / "o" / "final" / "adapter" / "adapter_config.json").is_file()
