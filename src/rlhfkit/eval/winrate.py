"""`rlhfkit eval`: is the aligned model better than where it started, and at what cost?

Both models answer the same held-out prompts with the same sampling settings (seeded: the same random stream for
each), a judge compares each pair of answers, and the report puts the win rate next to what it cost:

- win rate = (wins + ties / 2) / n, with a 95% Wilson score interval (Wilson 1927): better than the normal
  approximation at the small n and extreme rates an evaluation on a few dozen prompts gives;
- KL(policy || baseline) in nats per response, on the policy's own samples (the distribution the policy puts its
  mass on): for each response token the exact KL between the two next-token distributions at that prefix, summed
  over the response (a Rao-Blackwellised estimate: unbiased like the log-ratio "k1" estimate, with far less
  variance; exact for one-token responses). Both distributions at the sampling temperature, as PPO computes them;
- mean score of each model's answers, mean length in tokens (a win that comes only from longer answers shows here),
  and the share of answers that end with EOS rather than at the length cap.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import torch
from torch import Tensor

from rlhfkit.errors import RlhfkitError


# ----------------------------------------------------------------------------------------------
# maths
# ----------------------------------------------------------------------------------------------
def outcomes(policy_scores: Sequence[float], baseline_scores: Sequence[float], tie_margin: float = 0.0,
             same: Optional[Sequence[bool]] = None) -> list[str]:
    """Per prompt: "policy" | "baseline" | "tie". A tie when |difference| <= tie_margin or the texts are equal."""
    out = []
    for i, (p, b) in enumerate(zip(policy_scores, baseline_scores)):
        if (same is not None and same[i]) or abs(p - b) <= tie_margin:
            out.append("tie")
        else:
            out.append("policy" if p > b else "baseline")
    return out


def win_rate(wins: int, ties: int, losses: int) -> float:
    """(wins + ties / 2) / n; NaN when n = 0."""
    n = wins + ties + losses
    return (wins + 0.5 * ties) / n if n else float("nan")


def wilson_interval(p: float, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95% Wilson score interval of a proportion p observed over n trials (Wilson 1927, eq. in Agresti & Coull
    1998): centre (p + z^2/2n) / (1 + z^2/n), half-width z sqrt(p(1-p)/n + z^2/4n^2) / (1 + z^2/n)."""
    if n <= 0:
        return (0.0, 1.0)
    d = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / d
    half = z * math.sqrt(max(p * (1 - p), 0.0) / n + z * z / (4 * n * n)) / d
    return (max(0.0, centre - half), min(1.0, centre + half))


def token_kl(policy_logits: Tensor, baseline_logits: Tensor, temperature: float = 1.0) -> Tensor:
    """(..., V) logits of both models at the same positions -> (...) KL(p || q) of the next-token distributions at
    `temperature`: sum_v p_v (log p_v - log q_v)."""
    logp = torch.log_softmax(policy_logits.float() / temperature, -1)
    logq = torch.log_softmax(baseline_logits.float() / temperature, -1)
    return (logp.exp() * (logp - logq)).sum(-1)


# ----------------------------------------------------------------------------------------------
# generation and the KL pass
# ----------------------------------------------------------------------------------------------
@dataclass
class Answers:
    """One model's answers to the prompts: texts, token ids (with the final EOS when it ended), ended flags."""

    texts: list[str]
    response_ids: list[list[int]]
    ended: list[bool]

    @property
    def lengths(self) -> list[int]:
        return [len(r) for r in self.response_ids]


def answer(model: Any, tokenizer: Any, prompt_ids: Sequence[Sequence[int]], *, max_new_tokens: int,
           temperature: float, top_p: float, seed: int, batch_size: int, progress: Any = None) -> Answers:
    """Sample one answer per prompt, batched, with the global RNG seeded first (so two models get the same
    random stream)."""
    from rlhfkit.rollout.generate import sample

    torch.manual_seed(seed)
    from rlhfkit.data.tokenize import pad_token_id

    eos, pad = tokenizer.eos_token_id, pad_token_id(tokenizer)
    device = next(model.parameters()).device
    ids, ended = [], []
    for start in range(0, len(prompt_ids), batch_size):
        s = sample(model, prompt_ids[start:start + batch_size], max_new_tokens=max_new_tokens,
                   temperature=temperature, top_p=top_p, eos_id=eos, pad_id=pad, device=device)
        ids += s.response_ids
        ended += [bool(e) for e in s.ended]
        if progress is not None:
            progress.update(len(s.response_ids))
    texts = [tokenizer.decode(r, skip_special_tokens=True).strip() for r in ids]
    return Answers(texts, ids, ended)


@torch.no_grad()
def sequence_kl(policy: Any, baseline: Any, prompt_ids: Sequence[Sequence[int]],
                response_ids: Sequence[Sequence[int]], *, temperature: float, pad_id: int,
                batch_size: int = 8) -> Tensor:
    """(N,) KL(policy || baseline) of each response, in nats: the exact next-token KL at every response
    position, summed over the response (module doc). Right-padded batches; positions from the attention mask."""
    device = next(policy.parameters()).device
    out = torch.zeros(len(prompt_ids))
    for start in range(0, len(prompt_ids), batch_size):
        rows = [list(p) + list(r) for p, r in zip(prompt_ids[start:start + batch_size],
                                                   response_ids[start:start + batch_size])]
        T = max(len(r) for r in rows)
        ids = torch.full((len(rows), T), pad_id, dtype=torch.long)
        attn = torch.zeros((len(rows), T), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, :len(r)] = torch.tensor(r)
            attn[i, :len(r)] = 1
        ids, attn = ids.to(device), attn.to(device)
        lp = policy(input_ids=ids, attention_mask=attn).logits                   # (b, T, V)
        lq = baseline(input_ids=ids, attention_mask=attn).logits                 # (b, T, V)
        for i in range(len(rows)):
            P, L = len(prompt_ids[start + i]), len(response_ids[start + i])
            if L == 0:
                continue
            # logits at position t predict token t+1: response tokens P..P+L-1 are predicted at P-1..P+L-2
            out[start + i] = token_kl(lp[i, P - 1:P + L - 1], lq[i, P - 1:P + L - 1], temperature).sum().cpu()
    return out


# ----------------------------------------------------------------------------------------------
# the evaluation
# ----------------------------------------------------------------------------------------------
def starting_model(policy: str) -> tuple[str, Optional[str]]:
    """(the policy's weights folder, its starting model or None). A run folder means its final/ model; the
    starting model is read from the run's config.yaml (`model`, None = the default model) when there is one."""
    import yaml

    p = Path(policy)
    run = None
    if (p / "config.yaml").is_file() and (p / "final").is_dir():
        run, weights = p, str(p / "final")
    elif p.name == "final" and (p.parent / "config.yaml").is_file():
        run, weights = p.parent, str(p)
    else:
        weights = policy
    if run is None:
        return weights, None
    cfg = yaml.safe_load((run / "config.yaml").read_text()) or {}
    from rlhfkit.models.load import DEFAULT_MODEL

    return weights, cfg.get("model") or DEFAULT_MODEL


def judged_outcomes(judge: Any, prompts: Sequence[Any], policy_texts: Sequence[str], baseline_texts: Sequence[str],
                    progress: bool = False) -> tuple[list[str], dict]:
    """Per prompt "policy" | "baseline" | "tie" from a judge (rlhfkit.judges) asked in both orders: a win only when
    both orders name the same answer; orders that disagree (position bias) or a failed verdict count as a tie.
    Identical answers are ties without asking. Returns (outcomes, counts of agree/tie/disagree/failed)."""
    from rlhfkit.judges.label import judge_pairs

    ask = [i for i, (a, b) in enumerate(zip(policy_texts, baseline_texts)) if a != b]
    results, _ = judge_pairs(judge, [(prompts[i], policy_texts[i], baseline_texts[i]) for i in ask],
                             progress=progress)
    out = ["tie"] * len(policy_texts)
    counts = {"agree": 0, "tie": len(policy_texts) - len(ask), "disagree": 0, "failed": 0}
    for i, r in zip(ask, results):
        counts[r.status] += 1
        if r.status == "agree":
            out[i] = "policy" if r.winner == "a" else "baseline"
    return out, counts


def evaluate(policy: str, prompts: str, *, reward_model: Optional[str] = None, judge: Optional[str] = None,
             baseline: Optional[str] = None,
             output: Optional[str] = None, num_prompts: int = 0, max_new_tokens: int = 64, temperature: float = 0.7,
             top_p: float = 1.0, seed: int = 42, batch_size: int = 8, tie_margin: float = 0.0,
             max_prompt_length: int = 256, use_chat_template: Optional[bool] = None, progress: bool = True,
             models: Optional[dict] = None) -> dict:
    """Generate from policy and baseline on the prompts, judge each pair, write `eval.json` and `samples.jsonl`
    into `output` (when given), return the report (keys in the module doc and docs/eval.md).

    The reward model scores every answer; without `judge` the higher score wins. `judge` (a spec such as
    "hf:MODEL", "openai:MODEL", "rm:PATH", or a loaded rlhfkit.judges Judge) decides the winners instead, asked
    in both orders (`judged_outcomes`); the scores are still reported when a reward model is given.
    `models` may hand in already loaded objects ({"policy", "baseline", "tokenizer", "scorer"}), as the demo does."""
    from rlhfkit.data.tokenize import tokenize_prompt
    from rlhfkit.models.load import load_model, load_tokenizer
    from rlhfkit.models.scorer import RewardScorer
    from rlhfkit.rollout.generate import load_prompts

    t0 = time.perf_counter()
    models = dict(models or {})
    weights, start = starting_model(policy)
    baseline = baseline or start
    if reward_model is None and judge is None and "scorer" not in models:
        raise RlhfkitError("give a judge: --reward-model RM and/or --judge hf:MODEL|openai:MODEL|rm:PATH")
    if baseline is None and "baseline" not in models:
        raise RlhfkitError(f"{policy} is not a run folder with a config.yaml: give the model to compare with "
                           "(--baseline MODEL)")
    texts = load_prompts(prompts)
    if num_prompts > 0:
        texts = texts[:num_prompts]
    tok = models.get("tokenizer") or load_tokenizer(weights, quiet=True)
    pol = models.get("policy") or load_model(weights, quiet=True)
    base = models.get("baseline") or load_model(baseline, quiet=True)
    scorer = models.get("scorer") or (RewardScorer(reward_model, batch_size=batch_size) if reward_model else None)
    if isinstance(judge, str):
        from rlhfkit.judges import load_judge

        judge = load_judge(judge)
    prompt_ids = [tokenize_prompt(p, tok, max_prompt_length=max_prompt_length,
                                  use_chat_template=use_chat_template)[0] for p in texts]

    from rlhfkit.console import progress_bar
    from rlhfkit.data.tokenize import pad_token_id

    bar = progress_bar(2 * len(texts), 0, "eval: generate", progress, unit="answer")
    kw = dict(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, seed=seed,
              batch_size=batch_size, progress=bar)
    ans_p = answer(pol, tok, prompt_ids, **kw)
    ans_b = answer(base, tok, prompt_ids, **kw)
    bar.close()
    pad = pad_token_id(tok)
    kl = sequence_kl(pol, base, prompt_ids, ans_p.response_ids, temperature=max(temperature, 1e-6), pad_id=pad,
                     batch_size=batch_size)
    none = [None] * len(texts)
    score_p = scorer.score(texts, ans_p.texts) if scorer is not None else none
    score_b = scorer.score(texts, ans_b.texts) if scorer is not None else none
    verdicts = None
    if judge is not None:
        result, verdicts = judged_outcomes(judge, texts, ans_p.texts, ans_b.texts, progress=progress)
    else:
        result = outcomes(score_p, score_b, tie_margin, same=[a == b for a, b in zip(ans_p.texts, ans_b.texts)])
    wins, ties, losses = result.count("policy"), result.count("tie"), result.count("baseline")
    rate = win_rate(wins, ties, losses)
    n = len(texts)
    mean = lambda xs: float(sum(xs) / len(xs)) if len(xs) and None not in xs else None  # noqa: E731
    report = {
        "win_rate": rate, "ci95": list(wilson_interval(rate, n)), "wins": wins, "ties": ties, "losses": losses,
        "n": n, "score_policy": mean(score_p), "score_baseline": mean(score_b), "kl": float(kl.mean()),
        "length_policy": mean(ans_p.lengths), "length_baseline": mean(ans_b.lengths),
        "eos_policy": mean([float(e) for e in ans_p.ended]), "eos_baseline": mean([float(e) for e in ans_b.ended]),
        "policy": str(weights), "baseline": str(baseline or "(given)"),
        "judge": judge.judge_id if judge is not None else f"rm:{reward_model or '(given)'}",
        "judge_verdicts": verdicts,
        "prompts": str(prompts), "max_new_tokens": max_new_tokens, "temperature": temperature, "seed": seed,
        "seconds": time.perf_counter() - t0,
    }
    if output:
        out = Path(output)
        out.mkdir(parents=True, exist_ok=True)
        from rlhfkit.files import atomic_write_text

        rows = [{"prompt": p if isinstance(p, str) else json.dumps(p), "policy": a, "baseline": b,
                 "score_policy": sp, "score_baseline": sb, "winner": w, "length_policy": lp, "length_baseline": lb,
                 "eos_policy": ep, "eos_baseline": eb, "kl": float(k)}
                for p, a, b, sp, sb, w, lp, lb, ep, eb, k in zip(texts, ans_p.texts, ans_b.texts, score_p, score_b,
                                                                 result, ans_p.lengths, ans_b.lengths, ans_p.ended,
                                                                 ans_b.ended, kl)]
        atomic_write_text(out / "samples.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        atomic_write_text(out / "eval.json", json.dumps(report, indent=1) + "\n")
    return report


def _num(x: Optional[float]) -> str:
    return f"{x:10.3f}" if x is not None else f"{'-':>10}"


def format_report(r: dict) -> str:
    lo, hi = r["ci95"]
    lines = [
        f"win rate of the policy over the baseline: {r['win_rate']:.3f} (95% CI {lo:.3f}-{hi:.3f}) on {r['n']} "
        f"prompts: {r['wins']} wins, {r['ties']} ties, {r['losses']} losses (judge {r['judge']})",
        f"{'':14}{'policy':>10}{'baseline':>10}",
        f"{'mean score':14}{_num(r['score_policy'])}{_num(r['score_baseline'])}",
        f"{'length (tok)':14}{r['length_policy']:10.1f}{r['length_baseline']:10.1f}",
        f"{'ends with EOS':14}{r['eos_policy']:10.2f}{r['eos_baseline']:10.2f}",
        f"KL(policy || baseline) on the policy's answers: {r['kl']:.3f} nats per response",
    ]
    v = r.get("judge_verdicts")
    if v:
        lines.append(f"judge verdicts (both orders): {v['agree']} agree, {v['disagree']} disagree (position bias; "
                     f"counted as ties), {v['failed']} failed, {v['tie']} ties")
    if r["win_rate"] > 0.5 and r["length_policy"] > 1.5 * max(r["length_baseline"], 1):
        lines.append("note: the policy's answers are much longer than the baseline's; check the samples: a reward "
                     "model that likes length makes length win")
    if r["eos_policy"] < 0.5:
        lines.append("note: most policy answers hit the length cap (raise --max-new-tokens to judge whole answers)")
    return "\n".join(lines)
