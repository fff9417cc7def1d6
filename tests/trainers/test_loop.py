"""Loop plumbing: schedules, batching, atomic folders, activation checkpointing parity, precision choice."""
import pytest
import torch

from rlhfkit.trainers import loop


def test_lr_schedule_by_hand():
    f = lambda s, kind: loop.lr_lambda(s, total=10, warmup=2, kind=kind)  # noqa: E731
    assert [f(s, "constant") for s in (0, 1, 2, 9)] == [0.5, 1.0, 1.0, 1.0]
    assert [f(s, "linear") for s in (2, 6, 10)] == [1.0, 0.5, 0.0]
    assert f(6, "cosine") == pytest.approx(0.5) and f(10, "cosine") == pytest.approx(0.0)


def test_epoch_batches_are_a_pure_function_of_epoch_and_seed():
    lengths = list(range(100))
    a = loop.epoch_batches(lengths, 8, epoch=1, seed=3, shuffle=True, group_by_length=True)
    assert a == loop.epoch_batches(lengths, 8, epoch=1, seed=3, shuffle=True, group_by_length=True)
    assert a != loop.epoch_batches(lengths, 8, epoch=2, seed=3, shuffle=True, group_by_length=True)
    assert sorted(i for b in a for i in b) == lengths                  # every example once
    seq = loop.epoch_batches(lengths, 8, epoch=0, seed=0, shuffle=False, group_by_length=False)
    assert seq[0] == list(range(8)) and seq[-1] == [96, 97, 98, 99]   # file order
    grouped = loop.epoch_batches(lengths, 10, epoch=0, seed=0, shuffle=True, group_by_length=True)
    assert max(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in grouped) < 20


def test_atomic_dir_leaves_target_intact_on_failure(tmp_path):
    target = tmp_path / "ck"
    with loop.atomic_dir(target) as d:
        (d / "a").write_text("1")
    with pytest.raises(RuntimeError):
        with loop.atomic_dir(target) as d:
            (d / "a").write_text("2")
            raise RuntimeError("crash mid-write")
    assert (target / "a").read_text() == "1"
    assert [p.name for p in tmp_path.iterdir()] == ["ck"]


@pytest.mark.parametrize("mode", ["selective", "full", "lean"])
def test_activation_checkpointing_gives_the_same_gradients(tiny_tokenizer, mode):
    from conftest import make_model

    from rlhfkit.data.collate import pack_groups
    from rlhfkit.models.forward import sequence_logprobs

    batch = pack_groups([([5, 6, 7], [[8, 9], [10]]), ([11, 12], [[13, 14, 15]])], pad_id=0)
    grads = []
    for m in ("off", mode):
        model = make_model(tiny_tokenizer, seed=3).train()
        loop.enable_activation_checkpointing(model, m)
        lp = sequence_logprobs(model, batch)
        lp.sum().backward()
        grads.append((lp.detach(), [p.grad.clone() for p in model.parameters()]))
    torch.testing.assert_close(grads[0][0], grads[1][0], atol=1e-6, rtol=0)
    for a, b in zip(grads[0][1], grads[1][1]):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


def test_auto_precision_follows_the_hardware(monkeypatch):
    import rlhfkit.models.forward as fwd
    from rlhfkit.config import DPOConfig

    cfg = DPOConfig(precision="auto")
    monkeypatch.setattr(fwd, "native_bf16", lambda d: True)
    assert loop.resolve_precision(cfg, torch.device("cpu")).precision == "bf16"
    monkeypatch.setattr(fwd, "native_bf16", lambda d: False)
    assert loop.resolve_precision(cfg, torch.device("cpu")).precision == "fp32"
    assert loop.resolve_precision(DPOConfig(precision="bf16"), torch.device("cpu")).precision == "bf16"


def test_fp32_adapters_compute_lora_in_fp32_under_autocast(tiny_tokenizer):
    from conftest import make_model

    from rlhfkit.config import DPOConfig

    model = loop.apply_lora(make_model(tiny_tokenizer), DPOConfig(lora_r=4))
    assert loop.fp32_adapters(model) == 2 * 7 * 2                     # A and B, 7 targets, 2 layers
    seen = []
    a = model.base_model.model.model.layers[0].self_attn.q_proj.lora_A["default"]
    a.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(input_ids=torch.tensor([[5, 6, 7]])).logits
    assert seen == [torch.float32] and torch.isfinite(out).all()


@pytest.mark.parametrize("mode", ["off", "selective", "full", "lean"])
def test_lora_layers_adapts_only_the_top_layers_and_backward_stops_there(tiny_tokenizer, mode):
    """lora_layers=1 on a 3-layer model: adapters only in layer 2, and the backward pass never reaches the layers
    below it (their outputs need no gradient), which is where the saving comes from; with activation checkpointing
    too (transformers' own set-up would make the embeddings require grad), and with the same adapter gradients."""
    from conftest import make_model

    from rlhfkit.config import DPOConfig
    from rlhfkit.errors import RlhfkitError

    def lora_grads(ck: str):
        m = loop.apply_lora(make_model(tiny_tokenizer, layers=3), DPOConfig(lora_r=4, lora_layers=1))
        for n, p in m.named_parameters():
            if "lora_B" in n:
                torch.nn.init.normal_(p, std=0.1)   # B starts at zero: give A a gradient too
        loop.enable_activation_checkpointing(m, ck)
        m.train()
        m(input_ids=torch.tensor([[5, 6, 7, 8]])).logits.square().sum().backward()
        return {n: p.grad.clone() for n, p in m.named_parameters() if p.requires_grad}

    ref, got = lora_grads("off"), lora_grads(mode)
    assert ref.keys() == got.keys() and len(ref) == 14          # 7 target modules x (A, B), layer 2 only
    for n in ref:
        torch.testing.assert_close(ref[n], got[n], atol=1e-6, rtol=1e-5)

    model = loop.apply_lora(make_model(tiny_tokenizer, layers=3), DPOConfig(lora_r=4, lora_layers=1))
    loop.enable_activation_checkpointing(model, mode)
    model.train()
    adapted = {n.split("layers.")[1].split(".")[0] for n, p in model.named_parameters() if "lora_" in n}
    assert adapted == {"2"}
    seen = []
    inner = model.get_base_model().model.layers
    for i, layer in enumerate(inner):
        layer.register_forward_hook(lambda mod, inp, out, i=i: seen.append((i, (out[0] if isinstance(out, tuple)
                                                                                   else out).requires_grad)))
    model(input_ids=torch.tensor([[5, 6, 7, 8]])).logits.sum().backward()
    assert seen == [(0, False), (1, False), (2, True)]
    assert all(p.grad is not None for n, p in model.named_parameters() if "lora_" in n)
    with pytest.raises(RlhfkitError, match="has 3 layers"):
        loop.apply_lora(make_model(tiny_tokenizer, layers=3), DPOConfig(lora_r=4, lora_layers=5))
